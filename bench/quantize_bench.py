"""kd quantize on SST-2 (issue 17): dev accuracy, latency at batch 1, throughput at batch 64 and size on disk of
each model of the main command (the teacher and its students) in float32 and in int8.

For each model: `kd quantize` writes the int8 folder; `kd eval` gives both folders' dev accuracy (nothing is chosen
on dev here: quantization has no setting to tune, so dev is the test split it is for the students); `kd bench infer`
times both over the dev sentences with the same threads, warm-up and repeats. Rounds alternate which of the pair
runs first; each speed-up is the ratio within a round (float time / int8 time), and the tables give the median of
the rounds with their range. Verdicts come from TARGETS, declared here, never typed by hand.

Mixed precision, chosen on validation rows, not on dev: with --select-from RUN (a kd run folder whose summary.json
records the rows of the training file it held out and never trained on) and one or more --float-candidate REGEX,
each BERT-architecture model is quantized with every part int8 and once per candidate (the parts the regex names
keep int8 weights but compute in float: `kd quantize --float-modules`). On those held-out rows each int8 model is
compared with its float model (`kd eval --teacher`): the scheme whose predictions agree with the float model's
most often is kept (a tie keeps the earlier, all-int8 first: more float must buy agreement), and only the kept one
is scored on dev and timed. Agreement, not accuracy, because an int8 model's flips go both ways: on 2,000 rows
its net accuracy change is a few sentences of noise, while the flips themselves are what quantization adds.
  .venv/bin/python bench/quantize_bench.py --kd build/kd --data ../shared/data/sst2/dev.tsv --out runs/quantize-bench \
      --model teacher=runs/sst2-teacher/best --model bert-student=runs/sst2-distill-bert/student \
      --model bilstm=runs/sst2-distill/student --model textcnn=runs/sst2-distill-textcnn/student \
      --select-from runs/sst2-teacher --float-candidate 'layer\.[0-9]+\.output\.dense$'
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from run_bench import git_state, machine_info

# accuracy_drop_points: dev accuracy lost, at most; speedups: at least; size_ratio: at least, for the
# Linear-heavy models (the BERT-architecture ones).
TARGETS = {"accuracy_drop_points": 0.5, "speedup_batch1": 1.5, "speedup_batch64": 1.5, "size_ratio": 3.5}
LINEAR_HEAVY = {"bert"}


def kd(args, *argv):
    cmd = [args.kd, *argv, "--threads", str(args.threads), "--no-progress", "--log-level", "warn"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def bench(args, model, out):
    kd(args, "bench", "infer", "--model", model, "--data", args.data, "--repeats", str(args.repeats),
       "--out", out)
    with open(out) as f:
        return json.load(f)


def write_holdout(run, out):
    """The rows `run` held out of its training file (summary.json: data.holdout_row_ids, 0-based data rows),
    with the file's header, as a TSV for `kd eval`."""
    with open(os.path.join(run, "summary.json")) as f:
        data = json.load(f)["data"]
    ids = data.get("holdout_row_ids")
    if not ids:
        sys.exit(f"{run}/summary.json: data.holdout_row_ids is missing (the run had a validation file)")
    with open(data["train"], encoding="utf-8") as f:
        lines = f.read().split("\n")
    header, rows = lines[0], [x for x in lines[1:] if x.strip()]
    with open(out, "w", encoding="utf-8") as f:
        f.write(header + "\n" + "".join(rows[i] + "\n" for i in sorted(ids)))
    return len(ids)


def accuracy(args, model, data, out):
    kd(args, "eval", "--model", model, "--data", data, "--out", out)
    with open(out) as f:
        return json.load(f)["accuracy"]


def choose_scheme(args, name, folder, model_type, select_data):
    """[figures of every scheme tried on the held-out rows], and the kept regex ("" = every part int8)."""
    schemes = [""] + (args.float_candidate if model_type in LINEAR_HEAVY else [])
    if len(schemes) == 1 or not select_data:
        return [], ""
    tried = []
    for i, regex in enumerate(schemes):
        trial = os.path.join(args.out, f"{name}-int8-scheme{i}")
        kd(args, "quantize", "--model", folder, "--output", trial, "--overwrite",
           *(["--float-modules", regex] if regex else []))
        out = os.path.join(args.out, f"{name}-int8-scheme{i}-select.json")
        kd(args, "eval", "--model", trial, "--data", select_data, "--teacher", folder, "--out", out)
        with open(out) as f:
            ev = json.load(f)
        tried.append({"float_modules": regex, "valid_rows": ev["n"], "valid_accuracy_float32": ev["teacher"]["accuracy"],
                      "valid_accuracy_int8": ev["accuracy"],
                      "valid_drop_points": 100 * (ev["teacher"]["accuracy"] - ev["accuracy"]),
                      "valid_agreement": ev["teacher"]["agreement"], "valid_kl": ev["teacher"]["kl"]})
        t = tried[-1]
        print(f"{name} scheme {regex or 'every part int8'}: agreement with float {t['valid_agreement']:.4f}, "
              f"KL {t['valid_kl']:.4f}, accuracy drop {t['valid_drop_points']:.2f} points", flush=True)
    best = min(range(len(tried)), key=lambda i: (-tried[i]["valid_agreement"], i))
    return tried, tried[best]["float_modules"]


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kd", default="build/kd")
    p.add_argument("--data", required=True)
    p.add_argument("--model", action="append", required=True, help="name=folder (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--select-from", help="kd run folder whose held-out training rows choose the scheme")
    p.add_argument("--float-candidate", action="append", default=[],
                   help="regex of parts to compute in float (kd quantize --float-modules), tried against all-int8")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    select_data = None
    if args.select_from and args.float_candidate:
        select_data = os.path.join(args.out, "select-rows.tsv")
        print(f"choosing schemes on {write_holdout(args.select_from, select_data)} held-out rows of "
              f"{args.select_from}", flush=True)

    results = {}
    for spec in args.model:
        name, folder = spec.split("=", 1)
        int8 = os.path.join(args.out, name + "-int8")
        with open(os.path.join(folder, "config.json")) as f:
            model_type = json.load(f).get("model_type", "")
        tried, keep = choose_scheme(args, name, folder, model_type, select_data)
        print(kd(args, "quantize", "--model", folder, "--output", int8, "--overwrite",
                 *(["--float-modules", keep] if keep else [])).strip(), flush=True)
        with open(os.path.join(int8, "kd_quantization.json")) as f:
            info = json.load(f)
        acc = {kind: accuracy(args, path, args.data, os.path.join(args.out, f"{name}-{kind}-eval.json"))
               for kind, path in (("float32", folder), ("int8", int8))}
        rounds = []
        for r in range(args.rounds):
            order = [("float32", folder), ("int8", int8)]
            if r % 2:
                order.reverse()
            rounds.append({kind: bench(args, path, os.path.join(args.out, f"{name}-{kind}-bench.json"))
                           for kind, path in order})
            print(f"{name} round {r + 1}: " + ", ".join(
                f"{k} {v['batch1_ms_median']:.2f} ms, {v['batch64_examples_per_s']:.0f}/s" for k, v in rounds[-1].items()),
                flush=True)
        b1 = {k: spread([x[k]["batch1_ms_median"] for x in rounds]) for k in ("float32", "int8")}
        b64 = {k: spread([x[k]["batch64_examples_per_s"] for x in rounds]) for k in ("float32", "int8")}
        results[name] = {
            "folder": folder, "int8_folder": int8, "type": info["model_type"], "engine": info["engine"],
            "int8_tensors": info["int8_tensors"], "float_modules": keep, "schemes_tried_on_validation": tried,
            "accuracy": acc, "accuracy_drop_points": 100 * (acc["float32"] - acc["int8"]),
            "batch1_ms": b1, "batch64_examples_per_s": b64,
            "speedup_batch1": spread([x["float32"]["batch1_ms_median"] / x["int8"]["batch1_ms_median"] for x in rounds]),
            "speedup_batch64": spread([x["int8"]["batch64_examples_per_s"] / x["float32"]["batch64_examples_per_s"]
                                       for x in rounds]),
            "bytes": {"float32": folder_bytes(folder), "int8": folder_bytes(int8)},
        }
        res = results[name]
        res["size_ratio"] = res["bytes"]["float32"] / res["bytes"]["int8"]
        res["met"] = {
            "accuracy_drop_points": res["accuracy_drop_points"] <= TARGETS["accuracy_drop_points"],
            "speedup_batch1": res["speedup_batch1"]["median"] >= TARGETS["speedup_batch1"],
            "speedup_batch64": res["speedup_batch64"]["median"] >= TARGETS["speedup_batch64"],
        }
        if res["type"] in LINEAR_HEAVY:
            res["met"]["size_ratio"] = res["size_ratio"] >= TARGETS["size_ratio"]

    summary = {"machine": machine_info(args.threads), "git": git_state(), "data": args.data, "rounds": args.rounds,
               "repeats": args.repeats, "targets": TARGETS, "models": results}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)

    m = summary["machine"]
    lines = [f"# kd quantize: int8 against float32 on {os.path.basename(os.path.dirname(args.data)) or args.data}", "",
             f"{m['date_utc']}, {m['cpu']}, {args.threads} threads, engine {next(iter(results.values()))['engine']}; "
             f"{args.rounds} rounds of `kd bench infer` ({args.repeats} timed passes each); medians of the rounds "
             "(range).", "",
             "| model | dev acc float32 | dev acc int8 | drop (points) | batch 1 float32 → int8 (ms) | speed-up b1 | "
             "batch 64 float32 → int8 (ex/s) | speed-up b64 | disk float32 → int8 (MB) | size ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def rng(s, fmt):
        return f"{s['median']:{fmt}} ({s['min']:{fmt}}–{s['max']:{fmt}})"

    for name, r in results.items():
        lines.append(
            f"| {name} ({r['type']}{'; float: `' + r['float_modules'] + '`' if r['float_modules'] else ''}) | "
            f"{100 * r['accuracy']['float32']:.2f}% | {100 * r['accuracy']['int8']:.2f}% | "
            f"{r['accuracy_drop_points']:.2f} | {r['batch1_ms']['float32']['median']:.2f} → "
            f"{r['batch1_ms']['int8']['median']:.2f} | {rng(r['speedup_batch1'], '.2f')}× | "
            f"{r['batch64_examples_per_s']['float32']['median']:.0f} → {r['batch64_examples_per_s']['int8']['median']:.0f} | "
            f"{rng(r['speedup_batch64'], '.2f')}× | {r['bytes']['float32'] / 1e6:.1f} → {r['bytes']['int8'] / 1e6:.1f} | "
            f"{r['size_ratio']:.2f}× |")
    lines += ["", "Targets: accuracy drop ≤ {accuracy_drop_points} points; ≥ {speedup_batch1}× at batch 1 and "
              "≥ {speedup_batch64}× at batch 64; ≥ {size_ratio}× smaller on disk for the Linear-heavy "
              "(BERT-architecture) models.".format(**TARGETS), ""]
    for name, r in results.items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in r["met"].items()))
    for name, r in results.items():
        if r["schemes_tried_on_validation"]:
            lines.append(f"- {name}, schemes tried on {args.select_from}'s held-out rows (agreement with the float "
                         "model, mean KL(float || int8), accuracy drop in points): " +
                         "; ".join(f"`{t['float_modules'] or 'every part int8'}` {100 * t['valid_agreement']:.2f}%, "
                                   f"{t['valid_kl']:.4f}, {t['valid_drop_points']:.2f}"
                                   for t in r["schemes_tried_on_validation"]) +
                         f"; kept: `{r['float_modules'] or 'every part int8'}`")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
