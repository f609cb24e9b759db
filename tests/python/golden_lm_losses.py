"""Golden files for TokenDivergenceParityTest (written into <out>/losses/).

Independent PyTorch references for kd's chunked token-level losses: the student's logits h Wᵀ are
materialized, each divergence is written from its definition with autograd, and the gradients with
respect to h and W are taken by torch.autograd — nothing is shared with the C++ derivation.

token_<case>.safetensors   h (N, H), W (V, H), weights (N), and either teacher (N, V) logits or
                           topk_ids (N, k) int64, topk_logprobs (N, k), rest_logprob (N) — the teacher's
                           top-k log-probabilities at the temperature and the log of the remaining mass.
                           For each divergence D: D.value, D.grad_h, D.grad_w.
                           Metadata: temperature, mix.
ce.safetensors             h, W, labels (N) with -1 = ignored; value, grad_h, grad_w.
All tensors float64.
"""
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

DIVERGENCES = ["fkl", "rkl", "jsd", "tvd", "skew_kl", "skew_rkl"]


def kl(a, log_a, log_c):
    # Σ a (log a − log c) with 0 log 0 = 0
    return torch.where(a > 0, a * (torch.where(a > 0, log_a, 0) - torch.where(a > 0, log_c, 0)), 0).sum(-1)


def divergence(name, log_p, log_q, mix):
    p, q = log_p.exp(), log_q.exp()
    if name == "fkl":
        return kl(q, log_q, log_p)
    if name == "rkl":
        return kl(p, log_p, log_q)
    if name == "jsd":
        m = mix * q + (1 - mix) * p
        return mix * kl(q, log_q, m.log()) + (1 - mix) * kl(p, log_p, m.log())
    if name == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    if name == "skew_kl":
        return kl(q, log_q, (mix * q + (1 - mix) * p).log())
    if name == "skew_rkl":
        return kl(p, log_p, (mix * p + (1 - mix) * q).log())
    raise ValueError(name)


def buckets(student_logits, T, teacher=None, topk=None):
    log_p = F.log_softmax(student_logits / T, -1)
    if topk is None:
        return log_p, F.log_softmax(teacher / T, -1)
    ids, top_lq, rest_lq = topk
    others = log_p.scatter(1, ids, float("-inf")).logsumexp(1, keepdim=True)
    return torch.cat([log_p.gather(1, ids), others], 1), torch.cat([top_lq, rest_lq[:, None]], 1)


def case(h, w, weights, T, mix, teacher=None, topk=None):
    out = {"h": h, "W": w, "weights": weights}
    if topk is None:
        out["teacher"] = teacher
    else:
        out["topk_ids"], out["topk_logprobs"], out["rest_logprob"] = topk
    for name in DIVERGENCES:
        hh, ww = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
        log_p, log_q = buckets(hh @ ww.T, T, teacher, topk)
        value = (divergence(name, log_p, log_q, mix) * T * T * weights).sum() / weights.sum()
        gh, gw = torch.autograd.grad(value, (hh, ww))
        out[f"{name}.value"], out[f"{name}.grad_h"], out[f"{name}.grad_w"] = value.detach(), gh, gw
    return out


def make(args):
    out = pathlib.Path(args.out) / "losses"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(20261129)
    N, H, V = 7, 5, 11
    weights = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    cases = {}
    h, w = torch.randn(N, H, generator=g), torch.randn(V, H, generator=g)
    cases["dense_t2"] = (dict(h=h, w=w, weights=weights, T=2.0, mix=0.3, teacher=torch.randn(N, V, generator=g) * 3),)
    h, w = torch.randn(N, H, generator=g), torch.randn(V, H, generator=g)
    cases["dense_t1"] = (dict(h=h, w=w, weights=torch.ones(N), T=1.0, mix=0.5, teacher=torch.randn(N, V, generator=g) * 2),)
    # All-equal logits: a uniform student (h = 0); the teacher uniform on the first rows.
    teacher = torch.randn(N, V, generator=g)
    teacher[:3] = 0.25
    cases["equal_t1_5"] = (dict(h=torch.zeros(N, H), w=torch.randn(V, H, generator=g), weights=torch.ones(N), T=1.5,
                                mix=0.5, teacher=teacher),)
    # Cached top-4 at T = 2: log-probabilities of the 4 best tokens and of the rest.
    h, w = torch.randn(N, H, generator=g), torch.randn(V, H, generator=g)
    full = F.log_softmax(torch.randn(N, V, generator=g) * 3 / 2.0, -1)
    top, ids = full.topk(4, -1)
    rest = full.scatter(1, ids, float("-inf")).logsumexp(1)
    cases["topk4_t2"] = (dict(h=h, w=w, weights=weights, T=2.0, mix=0.2, topk=(ids, top, rest)),)
    for name, (c,) in cases.items():
        save_file(case(c["h"], c["w"], c["weights"], c["T"], c["mix"], c.get("teacher"), c.get("topk")),
                  str(out / f"token_{name}.safetensors"), metadata={"temperature": repr(c["T"]), "mix": repr(c["mix"])})
    # Hard-label cross-entropy with ignored rows.
    h, w = torch.randn(N, H, generator=g).requires_grad_(True), torch.randn(V, H, generator=g).requires_grad_(True)
    labels = torch.randint(0, V, (N,), generator=g)
    labels[[1, 4]] = -1
    value = F.cross_entropy(h @ w.T, labels, ignore_index=-1)
    gh, gw = torch.autograd.grad(value, (h, w))
    save_file({"h": h.detach(), "W": w.detach(), "labels": labels, "value": value.detach(), "grad_h": gh, "grad_w": gw},
              str(out / "ce.safetensors"))
    torch.set_default_dtype(torch.float32)
    print(f"[golden] lm losses: {len(cases)} token-divergence cases, 1 cross-entropy case", flush=True)
