"""Hugging Face transformers inference of a teacher folder: the peer of `kd bench infer` (issue 4).

What it measures, on the CPU with `torch.set_num_threads(--threads)`, for
`AutoModelForSequenceClassification.from_pretrained(--model)` in eval mode under `torch.inference_mode()`:
  * batch-1 latency: one forward pass per sentence, a different real sentence of --data each pass (rows
    0, 1, 2, ...); the first --warmup passes are dropped, median and p90 (nearest rank) of the next
    --repeats are reported;
  * batch-64 throughput: forward passes over 64 consecutive rows (wrapping around the file), padded to the
    longest row as a server batching incoming requests would; 64 * 1000 / median ms of --repeats passes
    after --warmup;
  * achieved GFLOP/s at batch 64: FLOPs per example (kd's BERT formula, multiply-add = 2, at the mean real
    token count of the file, padding not counted) times examples/s.

Why it is fair: it follows kd's own profiler (src/eval/model_profile.cpp) step by step: same rows in the
same order, same warm-up and repeat counts, tokenization done before the clock starts (for batch 1 too),
only the model's forward pass is timed, same statistics, same FLOP formula; same weights, tokenizer,
max_length and thread count as kd's teacher.
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
    p.add_argument("--text", default="sentence")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64, help="the large batch")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", help="also write the JSON result here")
    args = p.parse_args()
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        sys.exit("need --repeats >= 1, --warmup >= 0 and --batch-size >= 1")
    torch = common.set_threads(args.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    device = common.device_of(torch, args.device)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval().to(device)
    texts = [t for t, _ in common.read_rows(args.data, args.text)]
    if not texts:
        sys.exit(f"{args.data}: no rows")
    n = len(texts)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    mean_tokens = sum(lengths) / n
    total = args.warmup + args.repeats

    def encode(rows):
        enc = tokenizer(rows, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items()}

    def time_ms(batch):
        start = time.perf_counter()
        model(**batch).logits
        common.sync(torch, device)
        return 1000 * (time.perf_counter() - start)

    with torch.inference_mode():
        singles = [encode([texts[r % n]]) for r in range(total)]
        b1 = [time_ms(b) for b in singles][args.warmup:]
        big = []
        for r in range(total):
            batch = encode([texts[(r * args.batch_size + i) % n] for i in range(args.batch_size)])
            ms = time_ms(batch)
            if r >= args.warmup:
                big.append(ms)
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
        "warmup": args.warmup, "repeats": args.repeats, "threads": torch.get_num_threads(), "device": str(device),
        "peak_rss_mib": common.peak_rss_mib(), **common.versions(),
        "attention": getattr(model.config, "_attn_implementation", None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": args.data, "rows": n, "max_length": args.max_length,
        "tokenization_timed": False,
    }
    common.emit(result, args.out)


if __name__ == "__main__":
    main()
