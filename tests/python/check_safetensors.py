"""Reads a safetensors file written by kd with the python `safetensors` package and writes it back.

Usage: check_safetensors.py IN OUT. SafeTensorsParityTest runs this on a file from kd::save_safetensors:
load_file must accept it (the python reader is strict about the header and the data layout), the
metadata must come through, and OUT (re-saved by python) lets the C++ side compare every byte.
"""
import json
import struct
import sys

from safetensors import safe_open
from safetensors.torch import load_file, save_file


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    if (8 + n) % 8 != 0:
        sys.exit(f"{src}: data section starts at {8 + n}, not 8-byte aligned")
    tensors = load_file(src)
    with safe_open(src, framework="pt") as f:
        meta = f.metadata() or {}
    if meta != header.get("__metadata__", {}):
        sys.exit(f"{src}: metadata mismatch {meta!r}")
    for name, t in tensors.items():
        h = header[name]
        if list(t.shape) != h["shape"]:
            sys.exit(f"{src}: tensor '{name}': shape {list(t.shape)} != header {h['shape']}")
    save_file(tensors, dst, metadata=meta or None)
    print(f"{src}: {len(tensors)} tensors read by python safetensors", flush=True)


if __name__ == "__main__":
    main()
