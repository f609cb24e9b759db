"""Data-parallel scaling of `kd train-teacher` (issue 15): training examples per second for one process with
1 thread, one process with 2 threads, and 2 ranks of 1 thread each started by torchrun (loopback Gloo), on the
same rows, global batch, steps and seed.

Each round runs the three set-ups in a rotated order; the figure of a run is train_rows x epochs / train_seconds
from its summary.json (training only: evaluations and checkpoints excluded by kd's own clock). The table gives
the median over the rounds and the range. Nothing is chosen: the runs are timed, their accuracy is not used.
  .venv/bin/python bench/data_parallel_scaling.py --kd build/kd --model models/all-MiniLM-L6-v2 \
      --data ../shared/data/sst2/train.tsv --out runs/dp-scaling
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from run_bench import git_state, machine_info

SETUPS = [  # name, ranks, threads per rank
    ("1 process, 1 thread", 1, 1),
    ("1 process, 2 threads", 1, 2),
    ("2 ranks (torchrun), 1 thread each", 2, 1),
]


def head(src, dst, rows):
    with open(src) as f, open(dst, "w") as g:
        for i, line in enumerate(f):
            if i > rows:
                break
            g.write(line)


def run(args, name, ranks, threads, run_dir):
    base = ["train-teacher", "--config", os.path.join(args.out, "teacher.yaml"), "--run-dir", run_dir,
            "--overwrite", "--threads", str(threads), "--no-progress", "--log-level", "warn"]
    if ranks == 1:
        cmd = [args.kd, *base]
    else:
        torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
        cmd = [torchrun, "--standalone", f"--nproc-per-node={ranks}", "--no-python", args.kd, *base]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{name}: {' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        s = json.load(f)
    return s["train_rows"] * args.epochs / s["train_seconds"], s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kd", default="build/kd")
    p.add_argument("--model", required=True, help="pretrained BERT folder")
    p.add_argument("--data", required=True, help="a labelled TSV (sentence, label)")
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    train = os.path.join(args.out, "train.tsv")
    head(args.data, train, args.rows)
    with open(os.path.join(args.out, "teacher.yaml"), "w") as f:
        f.write(f"model: {{type: bert, path: {os.path.abspath(args.model)}, max_length: {args.max_length}}}\n"
                f"data: {{train: {os.path.abspath(train)}, valid_fraction: 0.05, text: sentence, label: label}}\n"
                f"train: {{epochs: {args.epochs}, batch_size: {args.batch_size}, lr: 3.0e-5, checkpoint_every: 0,"
                f" seed: 1}}\n")
    rates = {name: [] for name, _, _ in SETUPS}
    for k in range(args.rounds):
        order = SETUPS[k % len(SETUPS):] + SETUPS[:k % len(SETUPS)]
        for name, ranks, threads in order:
            run_dir = os.path.join(args.out, f"run-{ranks}x{threads}")
            rate, summary = run(args, name, ranks, threads, run_dir)
            rates[name].append(rate)
            print(f"round {k + 1}: {name}: {rate:.1f} examples/s", flush=True)
            shutil.rmtree(run_dir)
    table = {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": v}
             for name, v in rates.items()}
    base = table["1 process, 2 threads"]["median"]
    result = {"machine": machine_info(2), "git": git_state(), "rows": args.rows, "batch_size": args.batch_size,
              "max_length": args.max_length, "epochs": args.epochs, "examples_per_second": table,
              "two_ranks_vs_two_threads": table["2 ranks (torchrun), 1 thread each"]["median"] / base}
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"\n| set-up | examples/s (median) | range |\n|---|---|---|")
    for name, t in table.items():
        print(f"| {name} | {t['median']:.1f} | {t['min']:.1f}–{t['max']:.1f} |")
    m = result["machine"]
    print(f"\n2 ranks / 2 threads: {result['two_ranks_vs_two_threads']:.2f}x; {m['cpu']}, {m['date_utc']}")


if __name__ == "__main__":
    main()
