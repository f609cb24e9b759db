"""Shared pieces of the Python side of kd's benchmark (issue 4): thread set-up, the TSV reader, the
tokenizing collate function, kd's BiLSTM student in PyTorch, the distillation loss, timing statistics and
the JSON result.

Every Python peer (plain PyTorch, TextBrewer, transformers inference) imports these, so the peers differ
only in the part being compared (who drives the step loop), never in data, tokenization, model shapes,
loss or statistics. The statistics match kd's own (`src/eval/model_profile.cpp`): median, and the
nearest-rank 90th percentile. So do the row lists (`read_row_list`: the files bench/run_bench.py writes
once and hands to every tool, kd included) and the warm-up rule (`WarmupRule`: at least N untimed steps
or passes and at least S seconds of them, as `kd bench` applies it).
"""
import argparse
import csv
import json
import math
import os
import platform
import resource
import sys


def set_threads(n):
    """Pins every thread pool this process may use to n threads. Must run before torch/tokenizers load."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_RS_NUM_CPUS"):
        os.environ[var] = str(n)  # RAYON_RS_NUM_CPUS: the Rust tokenizers' batch-encoding pool
    import torch
    torch.set_num_threads(n)
    return torch


def device_of(torch, name):
    """The torch.device for --device (cpu, cuda, cuda:N); one line and exit when CUDA is not visible."""
    if name != "cpu" and not torch.cuda.is_available():
        sys.exit(f"--device {name}: no CUDA device is visible; use --device cpu")
    return torch.device(name)


def sync(torch, device):
    """Waits for the work queued on a CUDA device, so that a clock read after it times finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def read_rows(path, text_col, label_col=None):
    """Rows of a TSV file with a header: a list of (text, label-string or None)."""
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if text_col not in header or (label_col is not None and label_col not in header):
            sys.exit(f"{path}: columns {header}, need text={text_col!r} label={label_col!r}")
        ti = header.index(text_col)
        li = header.index(label_col) if label_col is not None else None
        return [(r[ti], r[li] if li is not None else None) for r in reader if r]


def read_row_list(path):
    """A row list as kd reads it (`kd bench ... --rows`): one 0-based data-row index a line; blank lines
    and lines starting with '#' are skipped."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not line.isdigit():
                sys.exit(f"{path}:{n}: {line!r} is not a row index (an integer >= 0)")
            out.append(int(line))
    if not out:
        sys.exit(f"{path}: lists no rows")
    return out


def pick(items, indices, what):
    """items[i] for i in indices (in that order, repeats allowed); exits naming the first bad index."""
    bad = next((i for i in indices if i >= len(items)), None)
    if bad is not None:
        sys.exit(f"{what}: row {bad} is not among the {len(items)} rows")
    return [items[i] for i in indices]


class WarmupRule:
    """The warm-up rule every tool of the benchmark applies (kd's SpeedOptions and `kd bench distill` too):
    the first k steps (or passes) are untimed, k the least number >= n whose durations add up to >= s
    seconds. done(k, seconds) says whether k finished steps that took `seconds` end the warm-up."""

    def __init__(self, n, s):
        if n < 0 or s < 0:
            sys.exit("the warm-up needs steps >= 0 and seconds >= 0")
        self.n, self.s = n, s

    def done(self, k, seconds):
        return k >= self.n and seconds >= self.s

    def describe(self, unit="step", units="steps"):
        return f"at least {self.n} {unit if self.n == 1 else units} and at least {self.s:g} s"


def label_ids(rows, config):
    """Maps the label strings of `rows` to class ids through the teacher's config (label2id, id2label)."""
    label2id = {str(k): int(v) for k, v in (config.label2id or {}).items()}
    if all(lab in label2id for _, lab in rows):
        return [label2id[lab] for _, lab in rows]
    try:  # integer labels against a config with default LABEL_i names
        ids = [int(lab) for _, lab in rows]
    except ValueError:
        sys.exit(f"labels {sorted({lab for _, lab in rows})[:8]} not in the teacher's label2id {label2id}")
    if min(ids) < 0 or max(ids) >= config.num_labels:
        sys.exit(f"integer labels out of range for {config.num_labels} classes")
    return ids


def make_collate(tokenizer, max_length):
    """The collate function of every distillation peer: tokenizes the batch's sentences on the fly
    (padding to the longest row of the batch, truncation to max_length), as a tutorial loop does. "rows"
    holds each example's position in the pool (for the cached-logits mode)."""
    import torch

    def collate(batch):  # batch: list of (text, label_id, pool position)
        enc = tokenizer([t for t, _, _ in batch], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        enc["labels"] = torch.tensor([y for _, y, _ in batch], dtype=torch.long)
        enc["rows"] = torch.tensor([i for _, _, i in batch], dtype=torch.long)
        return dict(enc)
    return collate


def make_student(vocab_size, num_classes, embedding_dim, hidden, layers, dropout, padding_idx=0):
    """kd's BiLSTM student (src/models/bilstm.cpp) with max pooling: Embedding(V, E, padding_idx) ->
    bidirectional LSTM over the packed real lengths -> max over valid steps -> dropout -> Linear(2H, H)
    -> ReLU -> dropout -> Linear(H, C)."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class BiLstmStudent(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
            self.lstm = nn.LSTM(embedding_dim, hidden, num_layers=layers, bidirectional=True, batch_first=True,
                                dropout=dropout if layers > 1 else 0.0)
            self.dropout = nn.Dropout(dropout)
            self.hidden = nn.Linear(2 * hidden, hidden)
            self.classifier = nn.Linear(hidden, num_classes)

        def forward(self, input_ids, attention_mask, labels=None):  # labels: unused (TextBrewer passes them)
            T = input_ids.size(1)
            lengths = attention_mask.sum(1).clamp_min(1).cpu()
            packed = pack_padded_sequence(self.embedding(input_ids), lengths, batch_first=True,
                                          enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, 2H)
            valid = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
            pooled = out.masked_fill(~valid, float("-inf")).amax(1)
            h = torch.relu(self.hidden(self.dropout(pooled)))
            return self.classifier(self.dropout(h))

    return BiLstmStudent()


def distill_loss(student_logits, teacher_logits, labels, temperature, alpha):
    """alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y), batch means (Hinton 2015)."""
    import torch.nn.functional as F
    T = temperature
    kl = F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1),
                  reduction="batchmean") * (T * T)
    return alpha * kl + (1.0 - alpha) * F.cross_entropy(student_logits, labels)


def median(v):
    s = sorted(v)
    n = len(s)
    return float("nan") if n == 0 else (s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))


def percentile(v, q):
    """Nearest-rank percentile, q in (0, 1] (as kd's model_profile.cpp)."""
    s = sorted(v)
    if not s:
        return float("nan")
    return s[min(len(s), max(1, math.ceil(q * len(s)))) - 1]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def distill_args(description):
    """The flags shared by the distillation peers; defaults are kd's configs/sst2_distill.yaml."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--teacher", required=True, help="teacher folder (kd's best/ or any transformers classifier)")
    p.add_argument("--data", required=True, help="training TSV with a header")
    p.add_argument("--text", default="sentence")
    p.add_argument("--label", default="label")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--embedding-dim", type=int, default=128)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-ratio", type=float, default=0.05, help="of the schedule's total steps")
    p.add_argument("--epochs", type=int, default=3, help="only sets the schedule's length")
    p.add_argument("--clip-norm", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rows", help="file of training-row indices (one a line, as bench/run_bench.py writes it): "
                   "the pool every batch is drawn from (default: every row of --data)")
    p.add_argument("--steps", type=int, default=40, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before them (at least)")
    p.add_argument("--warmup-seconds", type=float, default=0.0, help="least time spent in untimed steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (teacher, student and batches)")
    p.add_argument("--out", help="also write the JSON result here")
    return p


def parse_distill_args(p):
    """Parses the peers' flags (distill_args plus a peer's own) and checks the step counts."""
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.warmup_seconds < 0:
        sys.exit("need --steps >= 1, --warmup >= 0 and --warmup-seconds >= 0")
    return args


def load_teacher_and_data(args):
    """What every peer starts from: the teacher's tokenizer, the teacher in eval mode, the pool of training
    rows (those of --rows, in that order, or all of --data) as (text, label id, pool position) triples, the
    number of data rows in --data, and the collate function that pads a batch of them."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    rows = read_rows(args.data, args.text, args.label)
    data_rows = len(rows)
    if args.rows:
        rows = pick(rows, read_row_list(args.rows), f"{args.rows} (rows of {args.data})")
    data = [(t, y, i) for i, ((t, _), y) in enumerate(zip(rows, label_ids(rows, teacher.config)))]
    return tokenizer, teacher, data, data_rows, make_collate(tokenizer, args.max_length)


def settings(args):
    """The hyper-parameters echoed into every distillation result, so runs can be checked for equality."""
    keys = ("max_length", "batch_size", "embedding_dim", "hidden", "layers", "dropout", "temperature", "alpha",
            "lr", "weight_decay", "warmup_ratio", "epochs", "clip_norm", "seed", "rows", "warmup", "warmup_seconds")
    return {k: getattr(args, k) for k in keys}


def versions():
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def emit(result, out=None):
    """Prints the result as one JSON line on stdout and, with out, writes it there too."""
    text = json.dumps(result, sort_keys=False)
    print(text, flush=True)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out + ".tmp", "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")
        os.replace(out + ".tmp", out)
