"""kd's benchmark against its Python peers (issue 4), in one run on one machine:

    python bench/run_bench.py --kd build/kd --teacher runs/sst2-teacher/best \
        --config configs/sst2_distill.yaml --out runs/bench [--steps 40 --warmup 5 --threads 2]

One after another, each in its own process (so peak RSS is per tool), with the same thread count:
  distillation steps: kd with cached teacher logits, kd with the teacher inline, the plain-PyTorch
  tutorial loop (bench/torch_distill.py, teacher inline; also with precomputed logits, for reference), and
  TextBrewer's BasicDistiller (bench/textbrewer_distill.py; skipped, with the reason, if it does not
  import); inference: the teacher in transformers (bench/hf_infer.py), kd's teacher and kd's student.

Why it is fair: every setting the tools share (data, text and label columns, max_length = the teacher's,
student shape, T, alpha, batch size, lr, weight decay, warm-up ratio, clipping, seed) is read once from the
kd config and the teacher folder and handed to every tool; warm-up steps are excluded and medians are
reported by all; the CPU, thread count, machine load and date are recorded. It prints a table with
examples/s, ms/step and peak RSS per tool and the kd / peer ratios against the issue's targets, and
writes <out>/results.json, <out>/bench.svg and one log and JSON per tool under <out>/. A sub-run that
fails is reported and makes the exit status non-zero (after all other runs are done).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import yaml

import chart

HERE = os.path.dirname(os.path.abspath(__file__))
# kd's defaults for keys a config leaves out (include/kd/train/*.h, models/bilstm.h, losses/distill_loss.h).
KD_DEFAULTS = {"lr": 5e-5, "weight_decay": 0.01, "warmup": 0.06, "clip_norm": 1.0, "epochs": 3, "batch_size": 32,
               "seed": 13, "embedding_dim": 300, "hidden": 300, "layers": 1, "dropout": 0.1,
               "temperature": 2.0, "alpha": 0.5}
# (key, label, numerator, denominator, metric, target or None). Metric "batch1_ms_median" is a latency:
# its ratio is denominator / numerator, so above 1 always means kd is faster.
RATIOS = [
    ("kd_cached/pytorch", "kd cached / PyTorch loop, distill ex/s", "kd_cached", "pytorch", "examples_per_s", 3.0),
    ("kd_cached/textbrewer", "kd cached / TextBrewer, distill ex/s", "kd_cached", "textbrewer", "examples_per_s", 3.0),
    ("kd_live/pytorch", "kd live / PyTorch loop, distill ex/s", "kd_live", "pytorch", "examples_per_s", 1.3),
    ("kd_teacher/transformers_b1", "kd teacher / transformers, batch-1 speed", "kd_infer_teacher",
     "transformers", "batch1_ms_median", 1.0),
    ("kd_teacher/transformers_b64", "kd teacher / transformers, batch-64 ex/s", "kd_infer_teacher",
     "transformers", "batch64_examples_per_s", 1.0),
    ("kd_student/kd_teacher_b1", "kd student / kd teacher, batch-1 speed", "kd_infer_student",
     "kd_infer_teacher", "batch1_ms_median", 10.0),
    ("kd_student/kd_teacher_b64", "kd student / kd teacher, batch-64 ex/s", "kd_infer_student",
     "kd_infer_teacher", "batch64_examples_per_s", 10.0),
    ("kd_live/textbrewer", "kd live / TextBrewer, distill ex/s (no target)", "kd_live", "textbrewer",
     "examples_per_s", None),
    ("kd_cached/pytorch_cached", "kd cached / PyTorch cached logits (no target)", "kd_cached", "pytorch_cached",
     "examples_per_s", None),
]
DISTILL_RUNS = [("kd_cached", "kd, cached teacher"), ("kd_live", "kd, teacher inline"),
                ("pytorch", "PyTorch loop, teacher inline"), ("pytorch_cached", "PyTorch loop, cached logits"),
                ("textbrewer", "TextBrewer BasicDistiller")]
INFER_RUNS = [("transformers", "teacher, transformers"), ("kd_infer_teacher", "teacher, kd"),
              ("kd_infer_student", "student, kd")]


def read_settings(config_path, teacher):
    cfg = yaml.safe_load(open(config_path)) or {}
    data, st = cfg.get("data") or {}, cfg.get("student") or {}
    dist, tr = cfg.get("distill") or {}, cfg.get("train") or {}
    problems = []
    if st.get("type", "bilstm") != "bilstm" or st.get("pooling", "max") != "max":
        problems.append("the Python peers implement kd's BiLSTM student with max pooling only")
    if dist.get("soft_loss", "kl") != "kl":
        problems.append("the Python peers implement the 'kl' soft loss only")
    if not isinstance(data.get("text", "sentence"), str):
        problems.append("sentence pairs are not supported by the Python peers")
    if problems:
        sys.exit(f"{config_path}: " + "; ".join(problems))
    kd_json = os.path.join(teacher, "kd.json")
    max_length = json.load(open(kd_json)).get("max_length", 64) if os.path.exists(kd_json) else 64
    seeds = (cfg.get("report") or {}).get("seeds") or [tr.get("seed", KD_DEFAULTS["seed"])]
    d = lambda sec, k: sec.get(k, KD_DEFAULTS[k])  # noqa: E731
    return {"train": data["train"], "valid": data["valid"], "text": data.get("text", "sentence"),
            "label": data.get("label", "label"), "max_length": max_length, "batch_size": d(tr, "batch_size"),
            "embedding_dim": d(st, "embedding_dim"), "hidden": d(st, "hidden"), "layers": d(st, "layers"),
            "dropout": d(st, "dropout"), "temperature": d(dist, "temperature"), "alpha": d(dist, "alpha"),
            "lr": d(tr, "lr"), "weight_decay": d(tr, "weight_decay"), "warmup_ratio": d(tr, "warmup"),
            "epochs": d(tr, "epochs"), "clip_norm": d(tr, "clip_norm"), "seed": seeds[0],
            "config_teacher": cfg.get("teacher")}


def machine_info(threads):
    cpu = "unknown"
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    git = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": threads,
            "cpu_flags_of_note": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
                                                 "amx_bf16", "amx_tile"}),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "platform": platform.platform(), "python": platform.python_version(),
            "git": git.stdout.strip() or None, "loadavg_start": os.getloadavg()}


def run_one(name, cmd, out_dir, threads, timeout):
    """Runs one tool; its stdout and stderr go to <out>/logs/<name>.log and its JSON to <out>/<name>.json."""
    json_path, log_path = os.path.join(out_dir, name + ".json"), os.path.join(out_dir, "logs", name + ".log")
    if os.path.exists(json_path):
        os.remove(json_path)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               RAYON_RS_NUM_CPUS=str(threads))
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        except OSError as e:
            log.write(f"cannot start: {e}\n")
            rc = "not started"
    wall = time.time() - start
    entry = {"command": cmd, "log": log_path, "wall_s": round(wall, 1), "rc": rc}
    if rc == 0 and os.path.exists(json_path):
        entry.update(status="ok", result=json.load(open(json_path)))
    else:
        tail = open(log_path, errors="replace").read().strip().splitlines()[-3:]
        entry.update(status="failed", why=f"exit {rc}" + ("" if rc != 0 else ", no JSON written"), tail=tail)
        print(f"[{name}] FAILED ({entry['why']}); log {log_path}:\n    " + "\n    ".join(tail), flush=True)
    print(f"[{name}] {entry['status']} in {wall:.0f} s", flush=True)
    return entry


def value(runs, name, metric):
    r = runs.get(name, {})
    v = r.get("result", {}).get(metric) if r.get("status") == "ok" else None
    return v if isinstance(v, (int, float)) and v > 0 else None


def ratios(runs):
    out = []
    for key, label, num, den, metric, target in RATIOS:
        a, b = value(runs, num, metric), value(runs, den, metric)
        r = None if a is None or b is None else (b / a if metric == "batch1_ms_median" else a / b)
        met = None if r is None or target is None else r >= target
        out.append({"key": key, "label": label, "ratio": r, "target": target, "met": met})
    return out


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "—".rjust(int(spec.split(".")[0]))


DISTILL_COLS = [("examples/s", "examples_per_s", "11.1f"), ("ms/step med", "ms_per_step_median", "12.1f"),
                ("p90", "ms_per_step_p90", "8.1f"), ("peak RSS MiB", "peak_rss_mib", "13.0f")]
INFER_COLS = [("b1 ms med", "batch1_ms_median", "11.2f"), ("b1 p90", "batch1_ms_p90", "8.2f"),
              ("b64 ex/s", "batch64_examples_per_s", "10.1f"), ("GFLOP/s b64", "gflops_per_s_batch64", "12.1f"),
              ("peak RSS MiB", "peak_rss_mib", "13.0f")]


def table(title, names, cols, runs):
    head = f"{title:34}" + "".join(" " + h.rjust(int(spec.split(".")[0])) for h, _, spec in cols)
    lines = [head]
    for name, label in names:
        r = runs.get(name, {})
        if r.get("status") != "ok":
            lines.append(f"{label:34} {r.get('status', 'not run')}: {r.get('why', '')}")
        else:
            lines.append(f"{label:34}" + "".join(" " + fmt(r["result"].get(k), spec) for _, k, spec in cols))
    return lines


def report(runs, rats, info):
    lines = [f"CPU: {info['cpu']} ({info['logical_cpus']} logical CPUs; {', '.join(info['cpu_flags_of_note'])})",
             f"threads: {info['threads']}   device: {info.get('device', 'cpu')}   date: {info['date_utc']}   "
             f"git: {info['git']}   load average at "
             f"start {info['loadavg_start'][0]:.2f}, end {info['loadavg_end'][0]:.2f}", ""]
    if max(info["loadavg_start"][0], info["loadavg_end"][0]) > 0.5 + 0.25 * info["logical_cpus"]:
        lines.append("WARNING: the machine was not idle (load average above); other work skews these figures")
    for name, r in runs.items():
        t = r.get("result", {}).get("threads")
        if r.get("status") == "ok" and t != info["threads"]:
            lines.append(f"WARNING: {name} ran with {t} threads, not {info['threads']}")
    lines += table("distillation", DISTILL_RUNS, DISTILL_COLS, runs) + [""]
    lines += table("inference", INFER_RUNS, INFER_COLS, runs)
    lines += ["", f"{'ratio (above 1: kd faster)':50} {'ratio':>7} {'target':>7}  result"]
    for r in rats:
        verdict = "—" if r["target"] is None else ("not measured" if r["met"] is None else
                                                   ("met" if r["met"] else "NOT met"))
        target = "—" if r["target"] is None else f"≥{r['target']:g}"
        lines.append(f"{r['label']:50} {fmt(r['ratio'], '7.2f')} {target:>7}  {verdict}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kd", default="build/kd", help="the kd binary")
    p.add_argument("--teacher", help="teacher folder (default: the config's teacher)")
    p.add_argument("--student", default="runs/sst2-distill/student", help="kd student folder for inference")
    p.add_argument("--config", default="configs/sst2_distill.yaml", help="kd distill config")
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where every tool runs its models")
    p.add_argument("--infer-warmup", type=int, default=3, help="transformers (kd's report default)")
    p.add_argument("--infer-repeats", type=int, default=50, help="transformers (kd's report default)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per sub-run")
    p.add_argument("--python", default=sys.executable, help="interpreter for the Python peers")
    args = p.parse_args()
    cfg_teacher = (yaml.safe_load(open(args.config)) or {}).get("teacher")
    teacher = args.teacher or cfg_teacher
    if not teacher or not os.path.isdir(teacher):
        sys.exit(f"teacher folder {teacher!r} not found")
    s = read_settings(args.config, teacher)
    if cfg_teacher and os.path.realpath(cfg_teacher) != os.path.realpath(teacher):
        print(f"warning: kd bench distill uses the config's teacher {cfg_teacher}, the Python peers {teacher}")
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    if args.device != "cpu":  # every peer would fail on its own; say it once, before anything runs
        probe = subprocess.run([args.python, "-c", "import sys, torch; sys.exit(not torch.cuda.is_available())"])
        if probe.returncode != 0:
            sys.exit(f"--device {args.device}: no CUDA device is visible to {args.python}; use --device cpu")
    info = machine_info(args.threads)
    info["device"] = args.device
    out = lambda n: os.path.join(args.out, n + ".json")  # noqa: E731
    dev = ["--device", args.device]
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)] + dev
    peer_flags = ["--teacher", teacher, "--data", s["train"], "--text", s["text"], "--label", s["label"]] + [
        x for k in ("max_length", "batch_size", "embedding_dim", "hidden", "layers", "dropout", "temperature",
                    "alpha", "lr", "weight_decay", "warmup_ratio", "epochs", "clip_norm", "seed")
        for x in ("--" + k.replace("_", "-"), str(s[k]))] + common
    kd_distill = [args.kd, "bench", "distill", "--config", args.config, "--knowledge"]
    plan = [("kd_cached", kd_distill + ["cached"] + common + ["--out", out("kd_cached")]),
            ("kd_live", kd_distill + ["live"] + common + ["--out", out("kd_live")]),
            ("pytorch", [args.python, os.path.join(HERE, "torch_distill.py")] + peer_flags + ["--out", out("pytorch")]),
            ("pytorch_cached", [args.python, os.path.join(HERE, "torch_distill.py"), "--knowledge", "cached"]
             + peer_flags + ["--out", out("pytorch_cached")]),
            ("textbrewer", [args.python, os.path.join(HERE, "textbrewer_distill.py")] + peer_flags
             + ["--out", out("textbrewer")]),
            ("transformers", [args.python, os.path.join(HERE, "hf_infer.py"), "--model", teacher, "--data", s["valid"],
                              "--text", s["text"], "--max-length", str(s["max_length"]), "--warmup",
                              str(args.infer_warmup), "--repeats", str(args.infer_repeats), "--threads",
                              str(args.threads), "--out", out("transformers")] + dev),
            ("kd_infer_teacher", [args.kd, "bench", "infer", "--model", teacher, "--data", s["valid"], "--threads",
                                  str(args.threads), "--out", out("kd_infer_teacher")] + dev),
            ("kd_infer_student", [args.kd, "bench", "infer", "--model", args.student, "--data", s["valid"],
                                  "--threads", str(args.threads), "--out", out("kd_infer_student")] + dev)]
    runs = {}
    for name, cmd in plan:
        if name == "textbrewer":
            probe = subprocess.run([args.python, "-c", "import textbrewer"], capture_output=True, text=True)
            if probe.returncode != 0:
                why = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
                runs[name] = {"status": "skipped", "why": f"textbrewer does not import: {why}", "command": cmd}
                print(f"[{name}] skipped: {runs[name]['why']}", flush=True)
                continue
        if name == "kd_infer_student" and not os.path.isdir(args.student):
            runs[name] = {"status": "failed", "why": f"student folder {args.student} not found (run kd distill first)",
                          "command": cmd}
            print(f"[{name}] FAILED: {runs[name]['why']}", flush=True)
            continue
        runs[name] = run_one(name, cmd, args.out, args.threads, args.timeout)
    info["loadavg_end"] = os.getloadavg()
    rats = ratios(runs)
    text = report(runs, rats, info)
    print("\n" + text)
    failed = sorted(n for n, r in runs.items() if r["status"] == "failed")
    results = {"machine": info, "settings": {**s, "teacher": teacher, "student": args.student, "config": args.config,
                                             "steps": args.steps, "warmup": args.warmup},
               "runs": runs, "ratios": rats, "failed": failed}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    panels = [("Distillation training", "examples/s",
               [(label, value(runs, n, "examples_per_s"), n.startswith("kd")) for n, label in DISTILL_RUNS],
               False, "higher"),
              ("Inference, batch 64", "examples/s",
               [(label, value(runs, n, "batch64_examples_per_s"), n.startswith("kd")) for n, label in INFER_RUNS],
               True, "higher"),
              ("Inference, batch 1", "median ms per sentence",
               [(label, value(runs, n, "batch1_ms_median"), n.startswith("kd")) for n, label in INFER_RUNS],
               True, "lower")]
    svg = chart.make_svg("kd vs Python peers", f"{info['cpu']}, {args.threads} threads, {info['date_utc']}, "
                         f"{args.steps} timed steps after {args.warmup} warm-up", panels)
    with open(os.path.join(args.out, "bench.svg"), "w") as f:
        f.write(svg)
    print(f"\nwrote {os.path.join(args.out, 'results.json')} and {os.path.join(args.out, 'bench.svg')}")
    if failed:
        print(f"FAILED sub-runs: {', '.join(failed)} (see their logs under {os.path.join(args.out, 'logs')})")
        sys.exit(1)


if __name__ == "__main__":
    main()
