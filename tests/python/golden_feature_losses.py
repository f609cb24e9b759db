"""Golden files for FeatureLossParityTest (written into <out>/losses/).

Independent PyTorch references for kd's feature-knowledge losses (include/kd/losses/feature_losses.h),
written from the papers' definitions: every batch row is cut down to its real tokens by boolean
indexing, the loss of that row is computed on the cut tensors with plain torch / F.kl_div (so padding
is absent rather than masked), and the rows are added up and divided by the number of real terms.
Gradients with respect to the student come from torch.autograd. Nothing is shared with the C++ code.

feature_<case>.safetensors   mask (B, T) int64 (1 = token), with padded rows;
                             hidden.student, hidden.teacher (B, T, H);
                             scores.student, scores.teacher (B, h, T, T) raw attention scores;
                             relation.student (B, T, Hs), relation.teacher (B, T, Ht);
                             for each loss L: L.value (), L.grad d value / d student.
                             Metadata: relation_heads. All float tensors float64.
Padded positions hold large garbage (×100) that the references never read.
"""
import math
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

LOSSES = ["hidden_mse", "hidden_cosine", "attention_score_mse", "attention_kl", "relation_kl"]


def hidden_mse(s, t, mask, _):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = mask[b].bool()
        total = total + ((s[b, real] - t[b, real]) ** 2).sum()
        count += int(real.sum()) * s.shape[2]
    return total / max(count, 1)


def hidden_cosine(s, t, mask, _):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = mask[b].bool()
        total = total + (1 - F.cosine_similarity(s[b, real], t[b, real], dim=-1)).sum()
        count += int(real.sum())
    return total / max(count, 1)


def real_block(scores_b, real):
    # (h, T, T) -> (h, n, n): the queries and keys that are real tokens
    return scores_b[:, real][:, :, real]


def attention_score_mse(s, t, mask, _):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = mask[b].bool()
        total = total + ((real_block(s[b], real) - real_block(t[b], real)) ** 2).sum()
        count += s.shape[1] * int(real.sum()) ** 2
    return total / max(count, 1)


def kl_rows(student_scores, teacher_scores):
    # Σ over heads and query rows of KL(softmax(teacher) ‖ softmax(student)), (h, n, n) inputs
    return F.kl_div(F.log_softmax(student_scores, -1), F.log_softmax(teacher_scores, -1), log_target=True,
                    reduction="sum")


def attention_kl(s, t, mask, _):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = mask[b].bool()
        if real.any():
            total = total + kl_rows(real_block(s[b], real), real_block(t[b], real))
        count += s.shape[1] * int(real.sum())
    return total / max(count, 1)


def relation(x, heads):
    # (n, H) -> (R, n, n): x_r x_rᵀ / √d_r for each of the R slices of width d_r = H / R
    d = x.shape[1] // heads
    parts = [x[:, r * d:(r + 1) * d] for r in range(heads)]
    return torch.stack([p @ p.T / math.sqrt(d) for p in parts])


def relation_kl(s, t, mask, heads):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = mask[b].bool()
        if real.any():
            total = total + kl_rows(relation(s[b, real], heads), relation(t[b, real], heads))
        count += heads * int(real.sum())
    return total / max(count, 1)


def with_garbage(x, mask, g, dims):
    # Fills every entry that touches a padded position (along the given dims of T) with large noise.
    pad = torch.zeros(x.shape, dtype=torch.bool)
    for d in dims:
        shape = [1] * x.dim()
        shape[0], shape[d] = mask.shape
        pad |= ~mask.bool().reshape(shape)
    return torch.where(pad, torch.randn(x.shape, generator=g) * 100, x)


def case(g, lengths, T, H, heads, Hs, Ht, relation_heads, scale):
    B = len(lengths)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).to(torch.int64)
    inputs = {
        "hidden": [torch.randn(B, T, H, generator=g) for _ in range(2)],
        "scores": [torch.randn(B, heads, T, T, generator=g) * scale for _ in range(2)],
        "relation": [torch.randn(B, T, Hs, generator=g), torch.randn(B, T, Ht, generator=g)],
    }
    # Teacher close to the student for the hidden states (a trained pair), unrelated elsewhere.
    inputs["hidden"][1] = inputs["hidden"][0] + 0.5 * inputs["hidden"][1]
    out = {"mask": mask}
    for kind, (s, t) in inputs.items():
        dims = [1] if kind != "scores" else [2, 3]
        out[f"{kind}.student"], out[f"{kind}.teacher"] = with_garbage(s, mask, g, dims), with_garbage(t, mask, g, dims)
    for name in LOSSES:
        kind = "hidden" if name.startswith("hidden") else "scores" if name.startswith("attention") else "relation"
        s = out[f"{kind}.student"].clone().requires_grad_(True)
        value = globals()[name](s, out[f"{kind}.teacher"], mask, relation_heads)
        (grad,) = torch.autograd.grad(value, s)
        out[f"{name}.value"], out[f"{name}.grad"] = value.detach(), grad
    return out


def make(args):
    out = pathlib.Path(args.out) / "losses"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(20261206)
    cases = {
        # One full row, one half padded, one with a single real token (mostly padding).
        "mixed": dict(lengths=[6, 4, 1], T=6, H=8, heads=4, Hs=6, Ht=8, relation_heads=2, scale=1.0),
        # An all-padding row, wider teacher relations (Hs = 4 < Ht = 12, d_r = 1 and 3), larger scores.
        "empty_row": dict(lengths=[5, 0, 3, 2], T=5, H=6, heads=2, Hs=4, Ht=12, relation_heads=4, scale=3.0),
        # No padding at all, a single relation head over the full widths.
        "unpadded": dict(lengths=[4, 4], T=4, H=5, heads=3, Hs=10, Ht=6, relation_heads=1, scale=2.0),
    }
    for name, c in cases.items():
        save_file(case(g, **c), str(out / f"feature_{name}.safetensors"),
                  metadata={"relation_heads": str(c["relation_heads"])})
    torch.set_default_dtype(torch.float32)
    print(f"[golden] feature losses: {len(cases)} cases", flush=True)
