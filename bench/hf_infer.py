"""Hugging Face transformers inference of a teacher folder: the peer of `kd bench infer` (issue 4).

What it measures, with `torch.set_num_threads(--threads)`, for
`AutoModelForSequenceClassification.from_pretrained(--model)` in eval mode under `torch.inference_mode()`,
on a sample of --data's rows: the rows listed in --rows in that order (the list bench/run_bench.py picks
once and hands to `kd bench infer --rows` too; repeats allowed), or every row in file order:
  * batch-1 latency: one forward pass per sentence, sample rows 0 .. --repeats - 1; median and p90
    (nearest rank) of those --repeats passes;
  * batch-64 throughput: pass r runs sample rows (r * 64 + k) mod n, k < 64 (n: the sample's size), padded
    to the longest row as a server batching incoming requests would; 64 * 1000 / median ms of --repeats
    passes;
  * achieved GFLOP/s at batch 64: FLOPs per example (kd's BERT formula, multiply-add = 2, at the mean real
    token count of the sample, padding not counted) times examples/s.
Before each kind's timed passes comes its warm-up, cycling over the same batches: at least --warmup passes
and at least --warmup-seconds of them (common.WarmupRule, kd's SpeedOptions rule).

What is the same as in `kd bench infer` (kd's profiler, src/eval/model_profile.cpp), provided both get the
same --data, --rows, --repeats, --warmup, --warmup-seconds and --threads, as bench/run_bench.py gives
them: the rows of every timed pass, their order, the warm-up rule, tokenization done before the clock
starts (batch 1 too), only the forward pass timed, the statistics, the FLOP formula, and the weights,
tokenizer and max_length of the teacher. What is not: the two tools' own kernels and batch collation, and
the process (each runs in its own).
"""
import argparse
import sys
import time

import common


def bert_flops_per_example(config, tokens):
    """kd's BertTeacher::flops_per_example: encoder layers, pooler and classifier; 2 FLOPs a multiply-add."""
    T, H, I = tokens, config.hidden_size, config.intermediate_size
    per_layer = 4 * T * H * H + 2 * T * T * H + 2 * T * H * I
    macs = config.num_hidden_layers * per_layer + H * H + H * config.num_labels
    return 2.0 * macs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a transformers classifier folder (e.g. kd's teacher best/)")
    p.add_argument("--data", required=True, help="TSV with a header, e.g. the validation file")
    p.add_argument("--rows", help="file of row indices of --data (one a line, in order, repeats allowed): the "
                   "sample (default: every row in file order)")
    p.add_argument("--text", default="sentence")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64, help="the large batch")
    p.add_argument("--warmup", type=int, default=20, help="untimed passes of each kind first (at least)")
    p.add_argument("--warmup-seconds", type=float, default=1.0, help="least time spent in untimed passes")
    p.add_argument("--repeats", type=int, default=50, help="timed passes of each kind")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", help="also write the JSON result here")
    args = p.parse_args()
    if args.repeats < 1 or args.warmup < 0 or args.warmup_seconds < 0 or args.batch_size < 1:
        sys.exit("need --repeats >= 1, --warmup >= 0, --warmup-seconds >= 0 and --batch-size >= 1")
    rule = common.WarmupRule(args.warmup, args.warmup_seconds)
    torch = common.set_threads(args.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    device = common.device_of(torch, args.device)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval().to(device)
    texts = [t for t, _ in common.read_rows(args.data, args.text)]
    data_rows = len(texts)
    if args.rows:
        texts = common.pick(texts, common.read_row_list(args.rows), f"{args.rows} (rows of {args.data})")
    if not texts:
        sys.exit(f"{args.data}: no rows")
    n = len(texts)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    mean_tokens = sum(lengths) / n

    def encode(rows):
        enc = tokenizer(rows, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items()}

    def time_ms(batch):
        common.sync(torch, device)
        start = time.perf_counter()
        model(**batch).logits
        common.sync(torch, device)
        return 1000 * (time.perf_counter() - start)

    def measure(batches):
        """The warm-up (cycling over the timed batches until the rule is met), then one timed pass each."""
        warm, start = 0, time.perf_counter()
        while not rule.done(warm, time.perf_counter() - start):
            time_ms(batches[warm % len(batches)])
            warm += 1
        return [time_ms(b) for b in batches], warm

    with torch.inference_mode():
        singles = [encode([texts[r % n]]) for r in range(args.repeats)]
        b1, warm1 = measure(singles)
        bigs = [encode([texts[(r * args.batch_size + k) % n] for k in range(args.batch_size)])
                for r in range(args.repeats)]
        big, warm64 = measure(bigs)
    big_ms = common.median(big)
    throughput = args.batch_size * 1000 / big_ms if big_ms > 0 else None
    flops = bert_flops_per_example(model.config, mean_tokens)
    result = {
        "tool": "transformers", "model": args.model,
        "batch1_ms_median": common.median(b1), "batch1_ms_p90": common.percentile(b1, 0.9),
        "batch64_examples_per_s": throughput,
        "batch64_ms_median": big_ms,
        "gflops_per_s_batch64": flops * throughput / 1e9 if throughput else None,
        "flops_per_example": flops, "mean_tokens": mean_tokens, "large_batch": args.batch_size,
        "warmup": args.warmup, "warmup_seconds": args.warmup_seconds,
        "warmup_passes_done": {"batch1": warm1, "batch64": warm64},
        "repeats": args.repeats, "threads": torch.get_num_threads(), "device": str(device),
        "peak_rss_mib": common.peak_rss_mib(), **common.versions(),
        "attention": getattr(model.config, "_attn_implementation", None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": args.data, "data_rows": data_rows, "rows_file": args.rows, "sample_rows": n,
        "max_length": args.max_length, "tokenization_timed": False,
    }
    common.emit(result, args.out)


if __name__ == "__main__":
    main()
