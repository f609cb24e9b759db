"""Golden files for SoftLabelLossParityTest and DistillLossParityTest (written into <out>/losses/).

Inputs are float32 with a fixed seed; references are computed by PyTorch's own losses
(F.kl_div, F.cross_entropy with probability targets, F.mse_loss) in float64 from those same inputs,
so the C++ side can check its float32 path (tolerance) and its float64 path (near-exact).

soft_<case>.safetensors    student (..., C), teacher (..., C), mask (...); metadata temperature.
                           For each loss L in kl, soft_ce, mse: L.per (...) per-position loss,
                           L.value the masked mean (batchmean for (B, C)), L.grad d value / d student.
distill_<case>.safetensors student (B, C), teacher (B, C), labels (B) int64 with -1 = unlabelled;
                           metadata soft, temperature, alpha. total, soft, hard (scalars), grad.
"""
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def kl_ref(s, t, T):
    log_ps = F.log_softmax(s / T, dim=-1)
    if torch.isinf(t).any():
        # log_target=True would compute exp(-inf) * (-inf - x) = NaN; with probabilities kl_div uses
        # xlogy, which defines 0 log 0 = 0.
        per = F.kl_div(log_ps, F.softmax(t / T, dim=-1), reduction="none")
    else:
        per = F.kl_div(log_ps, F.log_softmax(t / T, dim=-1), log_target=True, reduction="none")
    return per.sum(-1) * T * T


def soft_ce_ref(s, t, T):
    C = s.shape[-1]
    per = F.cross_entropy((s / T).reshape(-1, C), F.softmax(t / T, dim=-1).reshape(-1, C), reduction="none")
    return per.reshape(s.shape[:-1]) * T * T


def mse_ref(s, t, T):
    # kd's convention: teacher -inf entries (outside a cached top-k) are left out of the mean.
    C = s.shape[-1]
    s2, t2 = s.reshape(-1, C), t.reshape(-1, C)
    rows = []
    for i in range(s2.shape[0]):
        keep = ~torch.isneginf(t2[i])
        rows.append(F.mse_loss(s2[i][keep], t2[i][keep]) if keep.any() else s2[i].sum() * 0)
    return torch.stack(rows).reshape(s.shape[:-1])


LOSSES = {"kl": kl_ref, "soft_ce": soft_ce_ref, "mse": mse_ref}


def _soft_case(student, teacher, T, mask=None):
    if mask is None:
        mask = torch.ones(student.shape[:-1])
    out = {"student": student, "teacher": teacher, "mask": mask}
    for name, fn in LOSSES.items():
        s = student.double().requires_grad_(True)
        per = fn(s, teacher.double(), T)
        value = (per * mask.double()).sum() / mask.double().sum().clamp_min(1)
        if mask.dim() == 1 and bool(mask.all()) and name == "kl" and not torch.isinf(teacher).any():
            # For (B, C) without padding this is PyTorch's reduction='batchmean' (times T^2).
            bm = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(teacher.double() / T, -1), log_target=True,
                          reduction="batchmean") * T * T
            assert torch.allclose(bm, value, rtol=1e-12, atol=1e-12)
        (grad,) = torch.autograd.grad(value, s)
        out[f"{name}.per"] = per.detach()
        out[f"{name}.value"] = value.detach()
        out[f"{name}.grad"] = grad
    return out


def _distill_ref(s, t, labels, soft, T, alpha):
    labelled = labels >= 0
    ce = F.cross_entropy(s, labels, ignore_index=-1, reduction="none")  # 0 on ignored rows
    hard = ce[labelled].mean() if labelled.any() else s.sum() * 0
    if alpha == 0:
        return (hard, torch.zeros(()), hard)
    per_soft = LOSSES[soft](s, t, T)
    per_row = torch.where(labelled, alpha * per_soft + (1 - alpha) * ce, per_soft)
    return per_row.mean(), per_soft.mean(), hard


def _distill_case(g, soft, T, alpha, B=10, C=6):
    student = torch.randn(B, C, generator=g) * 2
    teacher = torch.randn(B, C, generator=g) * 3
    labels = torch.randint(0, C, (B,), generator=g)
    labels[torch.tensor([1, 4, 5, 8])] = -1
    s = student.double().requires_grad_(True)
    total, soft_part, hard = _distill_ref(s, teacher.double(), labels, soft, T, alpha)
    (grad,) = torch.autograd.grad(total, s)
    tensors = {"student": student, "teacher": teacher, "labels": labels, "total": total.detach().clone(),
               "soft": soft_part.detach().double().clone(), "hard": hard.detach().clone(), "grad": grad}
    return tensors, {"soft": soft, "temperature": repr(T), "alpha": repr(alpha)}


def make(args):
    out = pathlib.Path(args.out) / "losses"
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(20240611)
    B, C = 8, 7
    cases = {}
    for name, T in (("bc_t1", 1.0), ("bc_t2", 2.0), ("bc_t4_5", 4.5)):
        cases[name] = (torch.randn(B, C, generator=g) * 2, torch.randn(B, C, generator=g) * 3, T, None)
    # (B, T, V) with padding: sequence lengths 5, 2, 0 (a fully padded sequence too).
    s3, t3 = torch.randn(3, 5, 11, generator=g) * 2, torch.randn(3, 5, 11, generator=g) * 2
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 2, 0])[:, None]).float()
    cases["btv_mask_t2"] = (s3, t3, 2.0, mask)
    # All-equal logits: a uniform student; teacher uniform in the first half of the rows.
    se = torch.full((B, C), 0.75)
    te = torch.randn(B, C, generator=g)
    te[: B // 2] = -1.25
    cases["equal_t2"] = (se, te, 2.0, None)
    # Large magnitudes: saturated softmaxes at T = 1 and a softened view at T = 4.5.
    sl = torch.where(torch.rand(B, C, generator=g) < 0.5, -50.0, 50.0) + torch.randn(B, C, generator=g)
    tl = torch.where(torch.rand(B, C, generator=g) < 0.5, -50.0, 50.0) + torch.randn(B, C, generator=g)
    cases["large_t1"] = (sl, tl, 1.0, None)
    cases["large_t4_5"] = (sl, tl, 4.5, None)
    # Teacher cached as top-3: every other class is -inf.
    st, tt = torch.randn(B, C, generator=g) * 2, torch.randn(B, C, generator=g) * 3
    top = tt.topk(3, dim=-1).indices
    tt = torch.full_like(tt, float("-inf")).scatter(-1, top, tt.gather(-1, top))
    cases["topk_t2"] = (st, tt, 2.0, None)
    for name, (s, t, T, m) in cases.items():
        save_file(_soft_case(s, t, T, m), str(out / f"soft_{name}.safetensors"), metadata={"temperature": repr(T)})

    for name, soft, T, alpha in (("kl_a0", "kl", 2.0, 0.0), ("kl_a0_3", "kl", 2.0, 0.3), ("kl_a1", "kl", 2.0, 1.0),
                                 ("soft_ce_a0_3", "soft_ce", 4.5, 0.3), ("mse_a0_3", "mse", 1.0, 0.3)):
        tensors, meta = _distill_case(g, soft, T, alpha)
        save_file(tensors, str(out / f"distill_{name}.safetensors"), metadata=meta)
    print(f"[golden] losses: {len(cases)} soft-loss cases, 5 distillation cases", flush=True)
