"""Plain-PyTorch distillation step loop: the peer kd's `distill` loop is measured against (issue 4).

What it measures: milliseconds per training step and examples per second of the loop a user writes from a
tutorial, on the CPU, with `torch.set_num_threads(--threads)`:

    for batch in DataLoader(rows, shuffle=True, collate_fn=tokenize):       # tokenized on the fly
        with torch.no_grad(): t = teacher(**batch).logits                  # transformers BERT teacher
        s = student(input_ids, attention_mask)                             # kd's BiLSTM, in PyTorch
        loss = a * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - a) * CE(s, y)
        loss.backward(); clip_grad_norm_(clip); AdamW.step(); schedule.step(); zero_grad()

The rows are the pool of --rows (the training-row indices bench/run_bench.py picks once and hands to kd
too), reshuffled every pass over it. Each timed interval is one whole step, from fetching (and tokenizing)
its batch to zero_grad. Warm-up rule, the same as kd's (common.WarmupRule): the first k steps are
untimed, k the least number >= --warmup whose steps took >= --warmup-seconds together; the next --steps
steps are timed; the median and p90 of them are reported, and examples/s is the timed examples over the
summed time of the timed steps.

What is the same as kd's measured loop: teacher weights (the kd teacher folder, loaded by transformers),
tokenizer and max_length, the pool of rows, the student's architecture and sizes (src/models/bilstm.cpp),
the loss, T, alpha, AdamW, lr, clipping, batch size, seed, warm-up rule and thread count, all read from
the kd config by the orchestrator; the code is shared with the TextBrewer peer (common.py). What is not:
this loop tokenizes inside the step and pads each random batch to its longest row (kd tokenizes once and
batches by length); the student's embeddings start random (kd: the teacher's table along its principal
axes), which changes no cost; the batches' order and composition differ (each tool's own shuffling).

--knowledge cached (not the tutorial loop; the like-for-like peer of kd's cached mode): the teacher's
logits for every row of the pool are computed once before the loop, untimed, in batches of --batch-size
rows (kd: its cache of the same pool), and each step gathers its rows' logits from them; everything else
is the same.
"""
import math
import time

import common


def main():
    p = common.distill_args(__doc__.splitlines()[0])
    p.add_argument("--knowledge", choices=("live", "cached"), default="live",
                   help="live: teacher forward every step (the tutorial loop); cached: precomputed logits")
    args = common.parse_distill_args(p)
    torch = common.set_threads(args.threads)
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    device = common.device_of(torch, args.device)
    tokenizer, teacher, data, data_rows, collate = common.load_teacher_and_data(args)
    teacher.to(device)

    torch.manual_seed(args.seed)
    student = common.make_student(len(tokenizer), teacher.config.num_labels, args.embedding_dim, args.hidden,
                                  args.layers, args.dropout, tokenizer.pad_token_id or 0).to(device)
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total_steps = math.ceil(data_rows / args.batch_size) * args.epochs  # the schedule of a run over --data
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)

    def batches():
        """Endless: a new shuffle each pass over the pool; the same seed gives the same sequence of batches."""
        gen = torch.Generator().manual_seed(args.seed)
        while True:
            for b in DataLoader(data, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=gen):
                yield {k: v.to(device) for k, v in b.items()}

    cache, cache_seconds = None, 0.0
    if args.knowledge == "cached":  # the teacher's logits of every pool row, in pool order
        t0 = time.perf_counter()
        parts = []
        with torch.no_grad():
            for i in range(0, len(data), args.batch_size):
                b = {k: v.to(device) for k, v in collate(data[i:i + args.batch_size]).items()}
                b.pop("labels")
                b.pop("rows")
                parts.append(teacher(**b).logits)
        cache = torch.cat(parts)
        cache_seconds = time.perf_counter() - t0

    rule = common.WarmupRule(args.warmup, args.warmup_seconds)
    it = batches()
    times, examples, tok_real, tok_padded, losses = [], 0, 0, 0, []
    warm_steps, warm_seconds = 0, 0.0
    timing = rule.done(0, 0.0)
    while len(times) < args.steps:
        t0 = time.perf_counter()
        batch = next(it)
        labels = batch.pop("labels")
        rows = batch.pop("rows")
        if cache is None:
            with torch.no_grad():
                teacher_logits = teacher(**batch).logits
        else:
            teacher_logits = cache[rows]
        student_logits = student(batch["input_ids"], batch["attention_mask"])
        loss = common.distill_loss(student_logits, teacher_logits, labels, args.temperature, args.alpha)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), args.clip_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        common.sync(torch, device)
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if timing:
            times.append(dt)
            examples += labels.numel()
            tok_real += int(batch["attention_mask"].sum())
            tok_padded += batch["input_ids"].numel()
        else:
            warm_steps += 1
            warm_seconds += dt
            timing = rule.done(warm_steps, warm_seconds)

    result = {
        "tool": "pytorch", "mode": args.knowledge, "steps": args.steps, "warmup": args.warmup,
        "warmup_seconds": args.warmup_seconds, "warmup_steps_done": warm_steps, "warmup_seconds_done": warm_seconds,
        "batch_size": args.batch_size,
        "ms_per_step_median": 1000 * common.median(times),
        "ms_per_step_p90": 1000 * common.percentile(times, 0.9),
        "examples_per_s": examples / sum(times),
        "peak_rss_mib": common.peak_rss_mib(), "threads": torch.get_num_threads(), "device": str(device),
        **common.versions(),
        "timed_examples": examples, "timed_seconds": sum(times),
        "tokens_real": tok_real, "tokens_padded": tok_padded,
        "padding_fraction": 1 - tok_real / tok_padded,
        "tokenization_in_step": True, "length_bucketing": False,
        "kd_loss": "kl (F.kl_div, batchmean) * T^2", "cache_seconds_untimed": cache_seconds,
        "teacher": args.teacher, "teacher_attention": getattr(teacher.config, "_attn_implementation", None),
        "data": args.data, "data_rows": data_rows, "rows_file": args.rows, "pool_rows": len(data),
        "num_classes": teacher.config.num_labels,
        "vocab_size": len(tokenizer),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "schedule_total_steps": total_steps,
        "optimizer_steps": int(optimizer.state[next(student.parameters())]["step"]),
        "loss_first": losses[0], "loss_last": losses[-1],
        "settings": common.settings(args),
    }
    common.emit(result, args.out)


if __name__ == "__main__":
    main()
