"""Writes golden reference outputs for the parity tests into the build tree.

Every module named golden_*.py beside this file provides `make(args)`; each writes its own files
under args.out. The C++ tests read them; no expected value is typed in by hand.
"""
import argparse
import importlib
import os
import pathlib
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="Hugging Face checkpoint folder (BERT)")
    ap.add_argument("--data", required=True, help="the shared data folder")
    ap.add_argument("--gguf", required=True, help="the causal LM as a GGUF file (SmolLM2)")
    ap.add_argument("--out", required=True, help="output folder for golden files")
    ap.add_argument("--only", default="", help="run only golden_<name>.py")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    here = pathlib.Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    for f in sorted(here.glob("golden_*.py")):
        name = f.stem
        if args.only and name != "golden_" + args.only:
            continue
        print(f"[golden] {name}", flush=True)
        importlib.import_module(name).make(args)


if __name__ == "__main__":
    main()
