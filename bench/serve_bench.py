"""Load benchmark of `kd serve` (issue 17): throughput and latency over loopback HTTP for the SST-2 student and
teacher, dynamic batching on and off, and the Python server a user would otherwise write (bench/serve_peer.py:
transformers behind FastAPI and uvicorn) serving the same student.

Every server gets the same threads (--threads, torch/LibTorch intra-op), the same request bodies (one dev
sentence per request, {"texts": [sentence]}, rows in file order, cycled) and the same load client
(`kd bench serve`: closed loop, `concurrency` clients with one keep-alive connection each, a warm-up of
--warmup requests at the same concurrency first). The client runs on the same machine as the server and
takes CPU from it: every server pays that alike. Rounds rotate the order of the servers; the tables give the
median of the rounds and their range. Bounded: every load stops after --requests requests or --max-seconds.

With --student-int8 (the student's folder from `kd quantize`), the deployed int8 student is measured the same
way: kd serve on that folder, batching on and off, against the Python server quantizing the same float student
with PyTorch's dynamic int8 (serve_peer.py --int8): the same model in the same precision on both sides.

Targets, computed here from the declared thresholds (TARGETS), for the float student and, when given, the int8
student, each against its own batching-off and Python rows: batching on >= 3x the throughput of batching off
at concurrency 32; kd >= 3x the Python server's throughput at concurrency 32 with a p99 no worse; a run of
10,000 requests at concurrency 32 with 0 failures.
  .venv/bin/python bench/serve_bench.py --kd build/kd --student runs/sst2-distill-bert-small/student \
      --student-int8 runs/sst2-distill-bert-small-int8 \
      --teacher runs/sst2-teacher/best --data ../shared/data/sst2/dev.tsv --out runs/serve-bench
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from run_bench import git_state, machine_info

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {"batching_speedup_c32": 3.0, "kd_vs_python_c32": 3.0, "failures_in_10000": 0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(port, proc, what, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with code {proc.returncode} before answering /health")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit(f"{what} did not answer /health within {seconds} s")


class Server:
    """One server process: kd serve (its port read from its 'listening on' line) or the Python peer."""

    def __init__(self, name, args, kind, model, extra=()):
        """kind: "kd" (extra: kd serve flags) or "py" (extra: serve_peer.py flags)."""
        self.name = name
        if kind == "kd":
            cmd = [args.kd, "serve", "--model", model, "--port", "0", "--threads", str(args.threads),
                   "--log-level", "warn", *extra]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline()
            if "listening on http://" not in line:
                sys.exit(f"{name}: kd serve said {line!r}")
            self.port = int(line.rsplit(":", 1)[1])
        else:
            self.port = free_port()
            max_length = json.load(open(os.path.join(model, "kd.json")))["max_length"]
            cmd = [args.python, os.path.join(HERE, "serve_peer.py"), "--model", model, "--port", str(self.port),
                   "--threads", str(args.threads), "--max-length", str(max_length), *extra]
            self.proc = subprocess.Popen(cmd)
        wait_health(self.port, self.proc, name)

    def stop(self):
        """SIGTERM; kd serve must drain and exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "killed after 60 s"
        return code


def load(args, server, concurrency, requests):
    out = os.path.join(args.out, "last_load.json")
    cmd = [args.kd, "bench", "serve", "--port", str(server.port), "--data", args.data, "--text", args.text,
           "--concurrency", str(concurrency), "--requests", str(requests), "--warmup", str(args.warmup),
           "--max-seconds", str(args.max_seconds), "--out", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kd", default="build/kd")
    p.add_argument("--python", default=sys.executable, help="Python with transformers, fastapi and uvicorn")
    p.add_argument("--student", required=True)
    p.add_argument("--student-int8", help="the student's int8 folder (kd quantize), measured as deployed")
    p.add_argument("--teacher", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--text", default="sentence")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--requests", type=int, default=2000, help="measured requests per load")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--long", type=int, default=10000, help="requests of the failure-free run")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    info = {"machine": machine_info(args.threads), "git": git_state(), "settings": vars(args).copy()}

    # (row name, server kind, model, extra kd serve flags, concurrencies)
    rows = [("kd student, batching on", "kd", args.student, [], [1, 8, 32]),
            ("kd student, batching off", "kd", args.student, ["--max-batch", "1"], [32]),
            ("Python (FastAPI + transformers) student", "py", args.student, [], [1, 8, 32]),
            ("kd teacher, batching on", "kd", args.teacher, [], [1, 8, 32])]
    pairs = [("float student", "kd student, batching on", "kd student, batching off",
              "Python (FastAPI + transformers) student")]
    if args.student_int8:
        rows += [("kd int8 student, batching on", "kd", args.student_int8, [], [1, 8, 32]),
                 ("kd int8 student, batching off", "kd", args.student_int8, ["--max-batch", "1"], [32]),
                 ("Python (FastAPI + transformers) int8 student", "py", args.student, ["--int8"], [1, 8, 32])]
        pairs.append(("int8 student", "kd int8 student, batching on", "kd int8 student, batching off",
                      "Python (FastAPI + transformers) int8 student"))
    results = {name: {c: [] for c in cs} for name, _, _, _, cs in rows}
    exits = {}
    for r in range(args.rounds):
        order = rows[r % len(rows):] + rows[:r % len(rows)]
        for name, kind, model, extra, concurrencies in order:
            server = Server(name, args, kind, model, extra)
            for c in concurrencies:
                res = load(args, server, c, args.requests)
                results[name][c].append(res)
                print(f"round {r + 1} {name} c={c}: {res['throughput']:.0f}/s p50 {res['p50_ms']:.2f} ms "
                      f"p99 {res['p99_ms']:.2f} ms failed {res['failed']}", flush=True)
            exits.setdefault(name, []).append(server.stop())

    server = Server("kd student, 10,000 requests", args, "kd", args.student)
    long_run = load(args, server, 32, args.long)
    exits["kd student, 10,000 requests"] = [server.stop()]
    print(f"long run: {long_run['answered']} answered, {long_run['failed']} failed", flush=True)

    def med(name, c, key):
        return statistics.median(x[key] for x in results[name][c])

    def spread(name, c, key):
        v = [x[key] for x in results[name][c]]
        return min(v), max(v)

    failures = long_run["failed"] + (args.long - long_run["answered"] - long_run["failed"])
    verdicts, met = {}, {}
    for label, on, off, py in pairs:
        v = {"batching_speedup_c32": med(on, 32, "throughput") / med(off, 32, "throughput"),
             "kd_vs_python_c32": med(on, 32, "throughput") / med(py, 32, "throughput"),
             "kd_p99_c32_ms": med(on, 32, "p99_ms"), "python_p99_c32_ms": med(py, 32, "p99_ms")}
        verdicts[label] = v
        met[label] = {"batching_speedup_c32": v["batching_speedup_c32"] >= TARGETS["batching_speedup_c32"],
                      "kd_vs_python_c32": v["kd_vs_python_c32"] >= TARGETS["kd_vs_python_c32"]
                      and v["kd_p99_c32_ms"] <= v["python_p99_c32_ms"]}
    verdicts["failures_in_10000"] = failures
    met["failures_in_10000"] = failures <= TARGETS["failures_in_10000"]
    met["kd_exits_0_on_sigterm"] = all(code == 0 for name, codes in exits.items() if "Python" not in name
                                       for code in codes)
    summary = {**info, "results": {n: {str(c): v for c, v in d.items()} for n, d in results.items()},
               "long_run": long_run, "exit_codes": exits, "verdicts": verdicts, "targets": TARGETS, "met": met}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)

    m = info["machine"]
    lines = [f"Measured {m['date_utc']} on {m['cpu']} ({m['logical_cpus']} logical CPUs), {args.threads} threads "
             f"per server, commit {info['git']['commit'][:10]}{' (dirty)' if info['git']['dirty'] else ''}; "
             f"{args.rounds} rounds of {args.requests} requests per load after {args.warmup} warm-up requests; "
             "median of the rounds (range).", "",
             "| server | concurrency | requests/s | p50 ms | p99 ms | failed |", "|---|---:|---:|---:|---:|---:|"]
    for name, _, _, _, cs in rows:
        for c in cs:
            lo, hi = spread(name, c, "throughput")
            failed = sum(x["failed"] for x in results[name][c])
            lines.append(f"| {name} | {c} | {med(name, c, 'throughput'):.0f} ({lo:.0f}–{hi:.0f}) | "
                         f"{med(name, c, 'p50_ms'):.2f} | {med(name, c, 'p99_ms'):.2f} | {failed} |")
    lines.append("")
    for label, *_ in pairs:
        v, m_ = verdicts[label], met[label]
        lines += [f"- {label}, dynamic batching at concurrency 32: {v['batching_speedup_c32']:.2f}x the throughput "
                  f"of batching off (target >= {TARGETS['batching_speedup_c32']}x): "
                  f"{'met' if m_['batching_speedup_c32'] else 'not met'}",
                  f"- {label}, kd against the Python server at concurrency 32: {v['kd_vs_python_c32']:.2f}x the "
                  f"throughput, p99 {v['kd_p99_c32_ms']:.2f} ms against {v['python_p99_c32_ms']:.2f} ms "
                  f"(target >= {TARGETS['kd_vs_python_c32']}x at no worse p99): "
                  f"{'met' if m_['kd_vs_python_c32'] else 'not met'}"]
    lines += [f"- {args.long} requests at concurrency 32 (float student): {long_run['answered']} answered, "
              f"{failures} failed, {long_run['throughput']:.0f}/s: {'met' if met['failures_in_10000'] else 'not met'}",
              f"- kd serve exits 0 on SIGTERM after its loads: {'yes' if met['kd_exits_0_on_sigterm'] else 'no'} "
              f"({exits})"]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
