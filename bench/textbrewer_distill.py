"""TextBrewer distillation step loop: the library peer kd's `distill` loop is measured against (issue 4).

What it measures: milliseconds per training step and examples per second of TextBrewer's `BasicDistiller`
(textbrewer 0.2.1.post1 from PyPI) distilling the same transformers teacher into the same BiLSTM student
on the CPU, with `torch.set_num_threads(--threads)`. TextBrewer owns the step loop, so the steps are timed
from outside: the dataloader is wrapped so that every batch fetch is timestamped; the interval between two
consecutive fetches is one whole step (fetching and tokenizing the batch, teacher forward under no_grad,
student forward, loss, backward, clipping, AdamW step, schedule step, zero_grad, TextBrewer's per-step
loss logging). Warm-up rule, the same as kd's and the PyTorch peer's (common.WarmupRule): the first k
steps are untimed, k the least number >= --warmup whose intervals add up to >= --warmup-seconds; the
wrapper ends the epoch at the fetch that closes the --steps-th timed interval. Its length, which
TextBrewer reads to plan checkpoints, is an upper bound never reached, so no checkpoint is saved (the
output folder is a temporary one, deleted afterwards).

What is the same as in the other peers: the pool of rows (--rows), tokenizing collate function, teacher,
student, AdamW, linear schedule, clipping, batch size, seed, warm-up rule and threads are the very objects
the plain-PyTorch peer uses (common.py). TextBrewer 0.2.1.post1
has no 'kl' kd_loss_type (its KD_LOSS_MAP holds 'ce' and 'mse'); its 'ce' is
-sum softmax(t/T) * log_softmax(s/T), i.e. KL(softmax(t/T) || softmax(s/T)) plus the teacher's entropy
(constant for the student) and without the T^2 factor, so kd_loss_weight = alpha * T^2 with
hard_label_weight = 1 - alpha gives exactly the gradients of alpha * KL * T^2 + (1 - alpha) * CE (the
reported loss value differs by that constant). The hard-label CE is returned by the student adaptor as
'losses', the way TextBrewer expects it.
"""
import math
import shutil
import sys
import tempfile
import time

import common


class TimedLoader:
    """An iterable of batches from an endless batch iterator that stops itself: stamps[i] is the time
    batch i was requested (so stamps[i + 1] - stamps[i] is step i); the first `first_timed` steps are the
    warm-up (`rule`), and iteration ends at the fetch that closes the `steps`-th timed step."""

    LENGTH = 10 ** 9  # what TextBrewer is told; never reached

    def __init__(self, source, rule, steps, now=time.perf_counter):
        self.source, self.rule, self.steps, self.now = source, rule, steps, now
        self.stamps, self.sizes, self.first_timed = [], [], None

    def __len__(self):
        return self.LENGTH

    def __iter__(self):
        self.stamps, self.sizes, self.first_timed = [], [], None
        while True:
            i = len(self.stamps)
            self.stamps.append(self.now())
            if self.first_timed is None and self.rule.done(i, self.stamps[i] - self.stamps[0]):
                self.first_timed = i
            if self.first_timed is not None and i == self.first_timed + self.steps:
                return
            batch = next(self.source)
            self.sizes.append((batch["student"]["labels"].numel(), int(batch["student"]["attention_mask"].sum()),
                               batch["student"]["input_ids"].numel()))
            yield batch


def main():
    p = common.distill_args(__doc__.splitlines()[0])
    p.add_argument("--tensorboard", action="store_true",
                   help="let TextBrewer write its TensorBoard log (into the temporary folder); default off")
    args = common.parse_distill_args(p)
    torch = common.set_threads(args.threads)
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup
    import textbrewer
    from textbrewer import BasicDistiller, DistillationConfig, TrainingConfig
    from textbrewer.presets import KD_LOSS_MAP

    device = common.device_of(torch, args.device)
    tokenizer, teacher, data, data_rows, collate = common.load_teacher_and_data(args)

    def collate_tb(batch):
        """TextBrewer's two-model batch: the teacher gets the encoder inputs, the student also the labels."""
        enc = collate(batch)
        teacher_in = {k: v for k, v in enc.items() if k not in ("labels", "rows")}
        return {"teacher": teacher_in,
                "student": {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                            "labels": enc["labels"]}}

    torch.manual_seed(args.seed)
    student = common.make_student(len(tokenizer), teacher.config.num_labels, args.embedding_dim, args.hidden,
                                  args.layers, args.dropout, tokenizer.pad_token_id or 0)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total_steps = math.ceil(data_rows / args.batch_size) * args.epochs  # the schedule of a run over --data

    def batches():
        gen = torch.Generator().manual_seed(args.seed)
        while True:
            yield from DataLoader(data, batch_size=args.batch_size, shuffle=True, collate_fn=collate_tb,
                                  generator=gen)

    def adaptor_T(batch, outputs):
        return {"logits": outputs.logits}

    def adaptor_S(batch, logits):
        return {"logits": logits, "labels": batch["labels"], "losses": F.cross_entropy(logits, batch["labels"])}

    kd_loss_type = "kl" if "kl" in KD_LOSS_MAP else "ce"
    T2 = args.temperature ** 2
    kd_weight = args.alpha if kd_loss_type == "kl" else args.alpha * T2
    workdir = tempfile.mkdtemp(prefix="kd-bench-textbrewer-")
    try:
        train_config = TrainingConfig(device=str(device), output_dir=workdir + "/ckpt",
                                      log_dir=workdir + "/tb" if args.tensorboard else None,
                                      ckpt_frequency=1, ckpt_epoch_frequency=1)
        distill_config = DistillationConfig(temperature=args.temperature, kd_loss_type=kd_loss_type,
                                            kd_loss_weight=kd_weight, hard_label_weight=1.0 - args.alpha)
        distiller = BasicDistiller(train_config, distill_config, teacher, student, adaptor_T, adaptor_S)
        def now():  # a step's queued CUDA work finishes before the next batch's stamp
            common.sync(torch, device)
            return time.perf_counter()

        loader = TimedLoader(batches(), common.WarmupRule(args.warmup, args.warmup_seconds), args.steps, now)
        with distiller:  # teacher eval(), student train() for the duration
            distiller.train(optimizer, loader, num_epochs=1, max_grad_norm=args.clip_norm,
                            scheduler_class=get_linear_schedule_with_warmup,
                            scheduler_args={"num_warmup_steps": int(args.warmup_ratio * total_steps),
                                            "num_training_steps": total_steps})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    s, k = loader.stamps, loader.first_timed
    if k is None or len(s) != k + args.steps + 1:
        sys.exit(f"TextBrewer stopped after {len(s) - 1} batches, before the {args.steps} timed steps were done")
    timed = range(k, k + args.steps)
    times = [s[i + 1] - s[i] for i in timed]
    examples = sum(loader.sizes[i][0] for i in timed)
    tok_real = sum(loader.sizes[i][1] for i in timed)
    tok_padded = sum(loader.sizes[i][2] for i in timed)
    result = {
        "tool": "textbrewer", "mode": "live", "steps": args.steps, "warmup": args.warmup,
        "warmup_seconds": args.warmup_seconds, "warmup_steps_done": k, "warmup_seconds_done": s[k] - s[0],
        "batch_size": args.batch_size,
        "ms_per_step_median": 1000 * common.median(times),
        "ms_per_step_p90": 1000 * common.percentile(times, 0.9),
        "examples_per_s": examples / sum(times),
        "peak_rss_mib": common.peak_rss_mib(), "threads": torch.get_num_threads(), "device": str(device),
        **common.versions(), "textbrewer": textbrewer.__version__,
        "timed_examples": examples, "timed_seconds": sum(times),
        "tokens_real": tok_real, "tokens_padded": tok_padded,
        "padding_fraction": 1 - tok_real / tok_padded,
        "tokenization_in_step": True, "length_bucketing": False,
        "kd_loss_type": kd_loss_type, "kd_loss_weight": kd_weight, "hard_label_weight": 1.0 - args.alpha,
        "kd_loss": ("TextBrewer 'kl'" if kd_loss_type == "kl" else
                    "TextBrewer 'ce' (= KL + teacher entropy, no T^2) weighted alpha*T^2: same gradients as "
                    "alpha*KL*T^2"),
        "tensorboard": args.tensorboard, "checkpoint_timed": False,
        "teacher": args.teacher, "teacher_attention": getattr(teacher.config, "_attn_implementation", None),
        "data": args.data, "data_rows": data_rows, "rows_file": args.rows, "pool_rows": len(data),
        "num_classes": teacher.config.num_labels,
        "vocab_size": len(tokenizer),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "schedule_total_steps": total_steps,
        "optimizer_steps": int(optimizer.state[next(student.parameters())]["step"]),
        "settings": common.settings(args),
    }
    common.emit(result, args.out)


if __name__ == "__main__":
    main()
