"""kd's benchmark against its Python peers (issue 4), on one machine:

    python bench/run_bench.py --kd build/kd --teacher runs/sst2-teacher/best \
        --config configs/sst2_distill.yaml --out runs/bench [--steps 40 --warmup 5 --threads 2 --rounds 3]

Eight tools, each in its own process (so peak RSS is per tool), --rounds times over:
  distillation steps: kd with cached teacher logits, kd with the teacher inline, the plain-PyTorch
  tutorial loop (bench/torch_distill.py) with the teacher inline and reading cached logits, and
  TextBrewer's BasicDistiller (bench/textbrewer_distill.py; skipped, with the reason, if it does not
  import); inference: the teacher in transformers (bench/hf_infer.py), kd's teacher and kd's student.
In round r the tools of each group (distillation, inference) run in the group's order rotated by
r * size // rounds, so no tool is always first or always right after the same neighbour.

What every tool of a group gets alike, handed to it by this script:
  * the settings: data, text and label columns, max_length (the teacher's), student shape, T, alpha, batch
    size, lr, weight decay, schedule, clipping and seed, read once from the kd config and the teacher folder;
  * the rows: this script picks them once (seeded) and writes them to <out>/distill_rows.txt (the pool of
    training rows every distillation step draws from) and <out>/infer_rows.txt (the inference sample:
    batch 1 times its first --infer-repeats rows, batch 64 pass r its rows r*64 .. r*64+63); every tool
    reads these files (kd through --rows);
  * the warm-up rule: at least --warmup steps and --warmup-seconds of them before the --steps timed
    distillation steps; at least --infer-warmup passes and --infer-warmup-seconds of them before the
    --infer-repeats timed passes of each inference kind;
  * the thread count (--threads; also OMP/MKL/RAYON variables) and the device.
What they do not share is disclosed in each peer's docstring (tokenization inside the Python steps, kd's
length bucketing, each tool's own batch order).

Reported: for every figure the median over rounds and the spread (min-max over rounds); every ratio is
the median of the per-round ratios (both tools of a ratio measured in the same round) with its min-max,
and its verdict follows from the target and that spread alone: "met" if the low end is >= the target,
"not met" if the high end is below it, otherwise "within noise". Written: <out>/results.json (commit,
dirty flag, CPU and its flags, versions, threads, date, rounds, warm-up rules, rows, every run of every
round, medians, spreads, ratios with verdicts), <out>/results.md (the tables, for the README to quote as
they are), <out>/bench.svg, and per tool and round <out>/<tool>.r<round>.json and <out>/logs/*.log.
A sub-run that fails is reported and makes the exit status non-zero (after all other runs are done).
"""
import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

import yaml

import chart
import common

HERE = os.path.dirname(os.path.abspath(__file__))
# kd's defaults for keys a config leaves out (include/kd/train/*.h, models/bilstm.h, losses/distill_loss.h).
KD_DEFAULTS = {"lr": 5e-5, "weight_decay": 0.01, "warmup": 0.06, "clip_norm": 1.0, "epochs": 3, "batch_size": 32,
               "seed": 13, "embedding_dim": 300, "hidden": 300, "layers": 1, "dropout": 0.1,
               "temperature": 2.0, "alpha": 0.5}
LARGE_BATCH = 64  # kd bench infer's (SpeedOptions::large_batch) and hf_infer's --batch-size

# (name, label, group)
TOOLS = [("kd_cached", "kd, cached teacher logits", "distill"),
         ("kd_live", "kd, teacher inline", "distill"),
         ("pytorch", "PyTorch loop, teacher inline", "distill"),
         ("pytorch_cached", "PyTorch loop, cached logits", "distill"),
         ("textbrewer", "TextBrewer BasicDistiller, teacher inline", "distill"),
         ("transformers", "teacher in transformers", "infer"),
         ("kd_infer_teacher", "teacher in kd", "infer"),
         ("kd_infer_student", "student in kd", "infer")]
LABELS = {n: label for n, label, _ in TOOLS}
GROUPS = {g: [n for n, _, gg in TOOLS if gg == g] for g in ("distill", "infer")}
# (key, label, numerator, denominator, metric, target or None). Metrics ending in "_ms_median" are
# latencies: their ratio is denominator / numerator, so above 1 always means the numerator is faster.
RATIOS = [
    ("kd_cached/pytorch", "kd cached / PyTorch loop (teacher inline), distill ex/s", "kd_cached", "pytorch",
     "examples_per_s", 3.0),
    ("kd_cached/textbrewer", "kd cached / TextBrewer, distill ex/s", "kd_cached", "textbrewer", "examples_per_s", 3.0),
    ("kd_live/pytorch", "kd inline / PyTorch loop (teacher inline), distill ex/s", "kd_live", "pytorch",
     "examples_per_s", 1.3),
    ("kd_cached/pytorch_cached", "kd cached vs PyTorch loop reading the same cached logits, distill ex/s",
     "kd_cached", "pytorch_cached", "examples_per_s", 1.5),
    ("kd_teacher/transformers_b1", "kd teacher / transformers, batch-1 speed", "kd_infer_teacher",
     "transformers", "batch1_ms_median", 1.0),
    ("kd_teacher/transformers_b64", "kd teacher / transformers, batch-64 ex/s", "kd_infer_teacher",
     "transformers", "batch64_examples_per_s", 1.0),
    ("kd_student/kd_teacher_b1", "kd student / kd teacher, batch-1 speed", "kd_infer_student",
     "kd_infer_teacher", "batch1_ms_median", 10.0),
    ("kd_student/kd_teacher_b64", "kd student / kd teacher, batch-64 ex/s", "kd_infer_student",
     "kd_infer_teacher", "batch64_examples_per_s", 10.0),
    ("kd_live/textbrewer", "kd inline / TextBrewer, distill ex/s", "kd_live", "textbrewer", "examples_per_s", None),
]
# (header, metric, kind) of the tables; kind picks the number format.
DISTILL_COLS = [("examples/s", "examples_per_s", "rate"), ("ms/step (median)", "ms_per_step_median", "ms"),
                ("ms/step (p90)", "ms_per_step_p90", "ms"), ("peak RSS MiB", "peak_rss_mib", "mib")]
INFER_COLS = [("batch 1 ms (median)", "batch1_ms_median", "ms"), ("batch 1 ms (p90)", "batch1_ms_p90", "ms"),
              ("batch 64 ex/s", "batch64_examples_per_s", "rate"), ("GFLOP/s at batch 64", "gflops_per_s_batch64", "rate"),
              ("peak RSS MiB", "peak_rss_mib", "mib")]
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


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
    # Inference runs on the config's test file (the reported set), else its validation file, else train.
    infer_data = data.get("test") or data.get("valid") or data["train"]
    return {"train": data["train"], "infer_data": infer_data, "text": data.get("text", "sentence"),
            "label": data.get("label", "label"), "max_length": max_length, "batch_size": d(tr, "batch_size"),
            "embedding_dim": d(st, "embedding_dim"), "hidden": d(st, "hidden"), "layers": d(st, "layers"),
            "dropout": d(st, "dropout"), "temperature": d(dist, "temperature"), "alpha": d(dist, "alpha"),
            "lr": d(tr, "lr"), "weight_decay": d(tr, "weight_decay"), "warmup_ratio": d(tr, "warmup"),
            "epochs": d(tr, "epochs"), "clip_norm": d(tr, "clip_norm"), "seed": seeds[0],
            "config_teacher": cfg.get("teacher")}


def git_state():
    def git(*a):
        r = subprocess.run(["git", "-C", HERE] + list(a), capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    status = git("status", "--porcelain")
    changed = [line[3:] for line in status.splitlines()] if status else []
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(changed),
            "changed_files": changed}


def machine_info(threads):
    cpu, flags = "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": threads,
            "cpu_flags": {f: f in flags for f in CPU_FLAGS},
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg()}


def probe_python(python):
    """Versions of the Python side, and whether TextBrewer imports (its reason if not)."""
    code = ("import json, sys\nout = {}\nimport torch, transformers\nout['torch'] = torch.__version__\n"
            "out['transformers'] = transformers.__version__\ntry:\n    import textbrewer\n"
            "    out['textbrewer'] = textbrewer.__version__\nexcept Exception as e:\n"
            "    out['textbrewer_error'] = f'{type(e).__name__}: {e}'\nprint(json.dumps(out))\n")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{python} cannot import torch and transformers:\n{r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_rows(path, rows, comment):
    with open(path, "w") as f:
        f.write(f"# {comment}\n" + "".join(f"{r}\n" for r in rows))


def pick_rows(s, args, out_dir):
    """The rows every tool reads: a pool of training rows for the distillation steps and the inference
    sample, both picked once with --rows-seed."""
    rng = random.Random(args.rows_seed)
    n_train = len(common.read_rows(s["train"], s["text"], s["label"]))
    pool = min(n_train, (args.warmup + args.steps) * s["batch_size"])
    distill = rng.sample(range(n_train), pool)
    n_valid = len(common.read_rows(s["infer_data"], s["text"]))
    need = args.infer_repeats * LARGE_BATCH
    infer = []
    while len(infer) < need:  # whole permutations of the file, as many as needed
        perm = list(range(n_valid))
        rng.shuffle(perm)
        infer += perm
    infer = infer[:need]
    files = {"distill": os.path.join(out_dir, "distill_rows.txt"), "infer": os.path.join(out_dir, "infer_rows.txt")}
    write_rows(files["distill"], distill,
               f"{pool} of the {n_train} data rows of {s['train']} (0-based), picked by bench/run_bench.py with "
               f"seed {args.rows_seed}: the pool every distillation step of every tool draws its batch from")
    write_rows(files["infer"], infer,
               f"{need} data rows of {s['infer_data']} ({n_valid} rows, 0-based), picked by bench/run_bench.py with "
               f"seed {args.rows_seed}: batch 1 times the first {args.infer_repeats}, batch-{LARGE_BATCH} pass r "
               f"rows r*{LARGE_BATCH} .. r*{LARGE_BATCH}+{LARGE_BATCH - 1}")
    return {"seed": args.rows_seed,
            "distill": {"file": files["distill"], "data": s["train"], "data_rows": n_train, "rows": distill},
            "infer": {"file": files["infer"], "data": s["infer_data"], "data_rows": n_valid, "rows": infer,
                      "batch1_rows": infer[:args.infer_repeats]}}


def run_one(name, rnd, cmd, out_dir, threads, timeout):
    """Runs one tool once; its stdout and stderr go to <out>/logs/<name>.r<round>.log and its JSON to
    <out>/<name>.r<round>.json (the command's --out)."""
    tag = f"{name}.r{rnd}"
    json_path, log_path = os.path.join(out_dir, tag + ".json"), os.path.join(out_dir, "logs", tag + ".log")
    if os.path.exists(json_path):
        os.remove(json_path)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               RAYON_RS_NUM_CPUS=str(threads))
    print(f"[round {rnd} {name}] {' '.join(cmd)}", flush=True)
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
    entry = {"round": rnd, "command": cmd, "log": log_path, "wall_s": round(wall, 1), "rc": rc}
    if rc == 0 and os.path.exists(json_path):
        entry.update(status="ok", result=json.load(open(json_path)))
    else:
        tail = open(log_path, errors="replace").read().strip().splitlines()[-3:]
        entry.update(status="failed", why=f"exit {rc}" + ("" if rc != 0 else ", no JSON written"), tail=tail)
        print(f"[round {rnd} {name}] FAILED ({entry['why']}); log {log_path}:\n    " + "\n    ".join(tail),
              flush=True)
    print(f"[round {rnd} {name}] {entry['status']} in {wall:.0f} s", flush=True)
    return entry


def value(entry, metric):
    v = entry.get("result", {}).get(metric) if entry and entry.get("status") == "ok" else None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def spread(values):
    """median, min, max and count of the values that are not None (Nones when there are none)."""
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def summarize(runs, rounds):
    """Per tool: status, per-round figures and their median / min / max over the rounds that succeeded."""
    out = {}
    for name, label, group in TOOLS:
        entries = runs[name]
        cols = DISTILL_COLS if group == "distill" else INFER_COLS
        per_round = {m: [value(e, m) for e in entries] for _, m, _ in cols}
        ok = sum(e.get("status") == "ok" for e in entries)
        out[name] = {"label": label, "group": group, "rounds_ok": ok, "rounds": len(entries),
                     "status": "ok" if ok == len(entries) else ("partial" if ok else entries[0].get("status")),
                     "why": next((e.get("why") for e in entries if e.get("status") != "ok"), None),
                     "per_round": per_round, **{k: {m: spread(v)[k] for m, v in per_round.items()}
                                                for k in ("median", "min", "max")}}
    return out


def verdict(lo, hi, target):
    if target is None:
        return "no target"
    if lo is None:
        return "not measured"
    if lo >= target:
        return "met"
    if hi < target:
        return "not met"
    return "within noise"


def ratios(runs, rounds):
    out = []
    for key, label, num, den, metric, target in RATIOS:
        per_round = []
        for r in range(rounds):
            a, b = value(runs[num][r], metric), value(runs[den][r], metric)
            per_round.append(None if a is None or b is None else (b / a if metric.endswith("_ms_median") else a / b))
        s = spread(per_round)
        out.append({"key": key, "label": label, "numerator": num, "denominator": den, "metric": metric,
                    "per_round": per_round, **s, "target": target, "verdict": verdict(s["min"], s["max"], target)})
    return out


def num(v, kind):
    if v is None:
        return "—"
    if kind == "mib":
        return f"{v:,.0f}"
    if kind == "ratio":
        return f"{v:.2f}×"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def cell(tool, metric, kind):
    med, lo, hi = tool["median"][metric], tool["min"][metric], tool["max"][metric]
    if med is None:
        return "—"
    return num(med, kind) if lo == hi else f"{num(med, kind)} ({num(lo, kind)}–{num(hi, kind)})"


def table(title, group, cols, summary):
    lines = ["| " + title + " | " + " | ".join(h for h, _, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name in GROUPS[group]:
        t = summary[name]
        if t["rounds_ok"] == 0:
            lines.append(f"| {t['label']} | {t['status']}: {t['why'] or ''} |" + " |" * (len(cols) - 1))
            continue
        note = "" if t["rounds_ok"] == t["rounds"] else f" ({t['rounds_ok']} of {t['rounds']} rounds)"
        lines.append(f"| {t['label']}{note} | " + " | ".join(cell(t, m, k) for _, m, k in cols) + " |")
    return lines


def markdown(results):
    m, st, summary = results["machine"], results["settings"], results["tools"]
    flags = " · ".join(f"{f} {'yes' if v else 'no'}" for f, v in m["cpu_flags"].items())
    git = results["git"]
    commit = (git["commit"] or "unknown")[:12] + (" (dirty: uncommitted changes)" if git["dirty"] else "")
    w = results["warmup_rule"]
    kd_torch = next((e["result"].get("torch") for n in ("kd_cached", "kd_infer_teacher") for e in results["runs"][n]
                     if e.get("status") == "ok"), None)
    lines = [
        "<!-- written by bench/run_bench.py from results.json; every figure and verdict is computed -->",
        f"Measured {m['date_utc']} on {m['cpu']} ({m['logical_cpus']} logical CPUs; {flags}), commit {commit}, "
        f"torch {results['versions'].get('torch')} (Python peers) and LibTorch {kd_torch} (kd), "
        f"{m['threads']} threads, device {results['device']}. {results['rounds']} rounds; every tool runs once a "
        f"round in its own process, the order rotated each round. Distillation: {st['steps']} timed steps of "
        f"batch {st['batch_size']} after a warm-up of {w['distill']['text']}, every tool drawing from the same "
        f"pool of {len(results['rows']['distill']['rows'])} rows of {st['train']}. Inference: "
        f"{st['infer_repeats']} timed passes of each kind after a warm-up of {w['infer']['text']} of that kind, "
        f"the same rows of {st['infer_data']} for every tool. Load average {m['loadavg_start'][0]:.2f} at the start, "
        f"{m['loadavg_end'][0]:.2f} at the end.",
        "",
        "Each figure: the median over rounds (in brackets the lowest–highest round). Each ratio: the median of "
        "the per-round ratios (lowest–highest round); the verdict is \"met\" if the lowest is at or above the "
        "target, \"not met\" if the highest is below it, else \"within noise\".", ""]
    if results["warnings"]:
        lines += [f"**Warning:** {x}" for x in results["warnings"]] + [""]
    lines += table("distillation", "distill", DISTILL_COLS, summary) + [""]
    lines += table("inference", "infer", INFER_COLS, summary) + [""]
    lines += ["| ratio (above 1: the first is faster) | median (lowest–highest) | target | verdict |",
              "|---|---|---|---|"]
    for r in results["ratios"]:
        rng = "—" if r["median"] is None else (num(r["median"], "ratio") if r["n"] == 1 else
                                               f"{num(r['median'], 'ratio')} ({num(r['min'], 'ratio')}–"
                                               f"{num(r['max'], 'ratio')})")
        if r["n"] and r["n"] < results["rounds"]:
            rng += f", {r['n']} of {results['rounds']} rounds"
        target = "—" if r["target"] is None else f"≥ {r['target']:g}×"
        lines.append(f"| {r['label']} | {rng} | {target} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def checks(runs, info, rows, settings):
    """Warnings: a loaded machine, and any tool whose reported threads, data rows, settings or (inference)
    token counts differ from what this script handed it."""
    out = []
    if max(info["loadavg_start"][0], info["loadavg_end"][0]) > 0.5 + 0.25 * info["logical_cpus"]:
        out.append("the machine was not idle (load average above 0.5 + 0.25 per CPU); other work skews these figures")
    for name, entries in runs.items():
        for e in entries:
            res = e.get("result", {}) if e.get("status") == "ok" else None
            if res is None:
                continue
            if res.get("threads") != info["threads"]:
                out.append(f"{name} (round {e['round']}) ran with {res.get('threads')} threads, not {info['threads']}")
            group = "distill" if name in GROUPS["distill"] else "infer"
            if res.get("data_rows") not in (None, rows[group]["data_rows"]):
                out.append(f"{name} (round {e['round']}) read {res['data_rows']} data rows of {rows[group]['data']}, "
                           f"this script {rows[group]['data_rows']}: the row lists do not name the same rows")
    for name in GROUPS["distill"]:  # the settings each distillation tool reports it ran with
        for e in runs[name]:
            got = e.get("result", {}).get("settings", {}) if e.get("status") == "ok" else {}
            for k in ("batch_size", "temperature", "alpha", "lr", "weight_decay", "clip_norm", "seed"):
                if k in got and settings.get(k) is not None and abs(float(got[k]) - float(settings[k])) > 1e-9:
                    out.append(f"{name} (round {e['round']}) ran with {k} = {got[k]}, not {settings[k]}")
    tokens = {n: {e["result"].get("mean_tokens") for e in runs[n] if e.get("status") == "ok"}
              for n in ("transformers", "kd_infer_teacher")}
    both = tokens["transformers"] | tokens["kd_infer_teacher"]
    if tokens["transformers"] and tokens["kd_infer_teacher"] and max(both) - min(both) > 1e-6 * max(both):
        out.append(f"kd's and transformers' tokenizers give different mean token counts on the same rows: "
                   f"{sorted(both)}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kd", default="build/kd", help="the kd binary")
    p.add_argument("--teacher", help="teacher folder, for every tool (default: the config's teacher)")
    p.add_argument("--student", default="runs/sst2-distill/student", help="kd student folder for inference")
    p.add_argument("--config", default="configs/sst2_distill.yaml", help="kd distill config")
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--rounds", type=int, default=3, help="runs of every tool, alternating (medians over them)")
    p.add_argument("--steps", type=int, default=40, help="timed distillation steps")
    p.add_argument("--warmup", type=int, default=5, help="distillation warm-up: at least this many steps ...")
    p.add_argument("--warmup-seconds", type=float, default=1.0, help="... and at least this many seconds of them")
    p.add_argument("--infer-repeats", type=int, default=50, help="timed inference passes of each kind")
    p.add_argument("--infer-warmup", type=int, default=20, help="inference warm-up: at least this many passes ...")
    p.add_argument("--infer-warmup-seconds", type=float, default=1.0,
                   help="... and at least this many seconds of them (each kind)")
    p.add_argument("--rows-seed", type=int, help="seed that picks the rows (default: the config's seed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where every tool runs its models")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per sub-run")
    p.add_argument("--python", default=sys.executable, help="interpreter for the Python peers")
    args = p.parse_args()
    if args.rounds < 1 or args.steps < 1 or args.infer_repeats < 1 or min(args.warmup, args.infer_warmup) < 0 \
            or min(args.warmup_seconds, args.infer_warmup_seconds) < 0:
        sys.exit("need --rounds, --steps, --infer-repeats >= 1 and warm-up counts and seconds >= 0")
    cfg_teacher = (yaml.safe_load(open(args.config)) or {}).get("teacher")
    teacher = args.teacher or cfg_teacher
    if not teacher or not os.path.isdir(teacher):
        sys.exit(f"teacher folder {teacher!r} not found")
    s = read_settings(args.config, teacher)
    if args.rows_seed is None:
        args.rows_seed = s["seed"]
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    if args.device != "cpu":  # every peer would fail on its own; say it once, before anything runs
        probe = subprocess.run([args.python, "-c", "import sys, torch; sys.exit(not torch.cuda.is_available())"])
        if probe.returncode != 0:
            sys.exit(f"--device {args.device}: no CUDA device is visible to {args.python}; use --device cpu")
    versions = probe_python(args.python)
    info = machine_info(args.threads)
    git = git_state()
    rows = pick_rows(s, args, args.out)
    distill_rule = common.WarmupRule(args.warmup, args.warmup_seconds)
    infer_rule = common.WarmupRule(args.infer_warmup, args.infer_warmup_seconds)

    dev = ["--device", args.device]
    threads = ["--threads", str(args.threads)]
    steps = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--warmup-seconds", str(args.warmup_seconds),
             "--rows", rows["distill"]["file"]] + threads + dev
    peer_flags = ["--teacher", teacher, "--data", s["train"], "--text", s["text"], "--label", s["label"]] + [
        x for k in ("max_length", "batch_size", "embedding_dim", "hidden", "layers", "dropout", "temperature",
                    "alpha", "lr", "weight_decay", "warmup_ratio", "epochs", "clip_norm", "seed")
        for x in ("--" + k.replace("_", "-"), str(s[k]))] + steps
    passes = ["--data", s["infer_data"], "--rows", rows["infer"]["file"], "--text", s["text"], "--repeats",
              str(args.infer_repeats), "--warmup", str(args.infer_warmup), "--warmup-seconds",
              str(args.infer_warmup_seconds)] + threads + dev
    kd_distill = [args.kd, "bench", "distill", "--config", args.config, "--teacher", teacher, "--seed",
                  str(s["seed"]), "--knowledge"]
    py = lambda script: [args.python, os.path.join(HERE, script)]  # noqa: E731
    commands = {"kd_cached": kd_distill + ["cached"] + steps,
                "kd_live": kd_distill + ["live"] + steps,
                "pytorch": py("torch_distill.py") + peer_flags,
                "pytorch_cached": py("torch_distill.py") + ["--knowledge", "cached"] + peer_flags,
                "textbrewer": py("textbrewer_distill.py") + peer_flags,
                "transformers": py("hf_infer.py") + ["--model", teacher, "--max-length", str(s["max_length"]),
                                                     "--batch-size", str(LARGE_BATCH)] + passes,
                "kd_infer_teacher": [args.kd, "bench", "infer", "--model", teacher] + passes,
                "kd_infer_student": [args.kd, "bench", "infer", "--model", args.student] + passes}
    cannot = {}
    if "textbrewer_error" in versions:
        cannot["textbrewer"] = ("skipped", f"textbrewer does not import: {versions['textbrewer_error']}")
    if not os.path.isdir(args.student):
        cannot["kd_infer_student"] = ("failed", f"student folder {args.student} not found (run kd distill first)")

    runs = {n: [] for n, _, _ in TOOLS}
    order = []
    for rnd in range(args.rounds):
        names = []
        for group in ("distill", "infer"):
            g = GROUPS[group]
            k = (rnd * len(g)) // args.rounds
            names += g[k:] + g[:k]
        order.append(names)
        for name in names:
            cmd = commands[name] + ["--out", os.path.join(args.out, f"{name}.r{rnd}.json")]
            if name in cannot:
                status, why = cannot[name]
                runs[name].append({"round": rnd, "status": status, "why": why, "command": cmd})
                print(f"[round {rnd} {name}] {status}: {why}", flush=True)
                continue
            runs[name].append(run_one(name, rnd, cmd, args.out, args.threads, args.timeout))
    info["loadavg_end"] = os.getloadavg()

    summary = summarize(runs, args.rounds)
    rats = ratios(runs, args.rounds)
    failed = sorted(n for n, e in runs.items() if any(x["status"] == "failed" for x in e))
    results = {
        "git": git, "machine": info, "versions": versions, "device": args.device, "threads": args.threads,
        "date_utc": info["date_utc"], "rounds": args.rounds, "order": order,
        "warmup_rule": {"distill": {"steps": args.warmup, "seconds": args.warmup_seconds,
                                    "text": distill_rule.describe("step")},
                        "infer": {"passes": args.infer_warmup, "seconds": args.infer_warmup_seconds,
                                  "text": infer_rule.describe("pass", "passes")}},
        "settings": {**s, "teacher": teacher, "student": args.student, "config": args.config, "steps": args.steps,
                     "infer_repeats": args.infer_repeats, "large_batch": LARGE_BATCH},
        "rows": rows, "runs": runs, "tools": summary, "ratios": rats,
        "warnings": checks(runs, info, rows, s), "failed": failed}
    md = markdown(results)
    print("\n" + md)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)

    def bars(group, metric):
        return [(summary[n]["label"], summary[n]["median"][metric], n.startswith("kd"),
                 summary[n]["min"][metric], summary[n]["max"][metric]) for n in GROUPS[group]]
    panels = [("Distillation training", "examples/s", bars("distill", "examples_per_s"), False, "higher"),
              ("Inference, batch 64", "examples/s", bars("infer", "batch64_examples_per_s"), True, "higher"),
              ("Inference, batch 1", "median ms per sentence", bars("infer", "batch1_ms_median"), True, "lower")]
    svg = chart.make_svg("kd vs Python peers", f"{info['cpu']}, {args.threads} threads, {info['date_utc']}; "
                         f"median of {args.rounds} rounds, whiskers: lowest–highest round", panels)
    with open(os.path.join(args.out, "bench.svg"), "w") as f:
        f.write(svg)
    print(f"wrote {', '.join(os.path.join(args.out, x) for x in ('results.json', 'results.md', 'bench.svg'))}")
    if failed:
        print(f"FAILED sub-runs: {', '.join(failed)} (see their logs under {os.path.join(args.out, 'logs')})")
        sys.exit(1)


if __name__ == "__main__":
    main()
