#include "kd/losses/chunked_lm_loss.h"

#include <functional>
#include <limits>
#include <memory>

#include "kd/error.h"

namespace kd {

namespace {

using torch::indexing::Slice;
const double kNegInf = -std::numeric_limits<double>::infinity();

// The loss of rows [a, b) given their student logits s (C, V): the chunk's contribution to the
// (already normalized) loss, and ∂loss/∂s (C, V) when `grad` is set.
struct ChunkResult {
  torch::Tensor value, grad_logits;
};
using ChunkFn = std::function<ChunkResult(const torch::Tensor& s, int64_t a, int64_t b, bool grad)>;

struct Walk {
  torch::Tensor loss, grad_h, grad_w;
};

// Walks over the rows of h in chunks; gradients accumulated as the header describes.
// With `grad_w` false the head's gradient is skipped (a frozen head).
Walk walk_chunks(const torch::Tensor& h, const torch::Tensor& w, int64_t chunk, const ChunkFn& fn, bool grad,
                 bool grad_w = true) {
  const int64_t n = h.size(0);
  Walk out;
  out.loss = torch::zeros({}, h.options());
  if (grad) {
    out.grad_h = torch::zeros_like(h);
    out.grad_w = grad_w ? torch::zeros_like(w) : torch::Tensor();
  }
  const auto wt = w.t();  // (H, V)
  for (int64_t a = 0; a < n; a += chunk) {
    const int64_t b = std::min(n, a + chunk);
    const auto hc = h.index({Slice(a, b)});  // (C, H)
    auto r = fn(hc.matmul(wt), a, b, grad);   // logits (C, V)
    if (!r.value.defined()) continue;         // nothing to learn from these rows
    out.loss += r.value;
    if (grad) {
      out.grad_h.index({Slice(a, b)}).copy_(r.grad_logits.matmul(w));  // (C, H)
      if (out.grad_w.defined()) out.grad_w.addmm_(r.grad_logits.t(), hc);  // (V, H)
    }
  }
  return out;
}

class ChunkedLossFunction : public torch::autograd::Function<ChunkedLossFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w,
                               int64_t chunk, std::shared_ptr<ChunkFn> fn) {
    auto r = walk_chunks(h, w, chunk, *fn, /*grad=*/true, w.requires_grad());
    ctx->saved_data["grad_h"] = r.grad_h;
    if (r.grad_w.defined()) ctx->saved_data["grad_w"] = r.grad_w;
    return r.loss;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto& g = grad_out[0];
    const auto gw = ctx->saved_data.count("grad_w") ? ctx->saved_data["grad_w"].toTensor() : torch::Tensor();
    return {ctx->saved_data["grad_h"].toTensor() * g, gw.defined() ? gw * g : torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

torch::Tensor run_loss(const torch::Tensor& h, const torch::Tensor& w, int64_t chunk, ChunkFn fn) {
  const bool grad = torch::GradMode::is_enabled() && (h.requires_grad() || w.requires_grad());
  if (!grad) return walk_chunks(h, w, chunk, fn, false).loss;
  return ChunkedLossFunction::apply(h, w, chunk, std::make_shared<ChunkFn>(std::move(fn)));
}

void check_student(const char* what, const torch::Tensor& h, const torch::Tensor& w, int64_t chunk) {
  if (chunk <= 0)
    throw ConfigError(located("distill.chunk", std::string(what) + ": chunk must be a positive number of tokens, got " +
                                                   std::to_string(chunk)));
  if (!h.defined() || !w.defined() || h.dim() != 2 || w.dim() != 2 || h.size(1) != w.size(1))
    throw DataError(std::string(what) + ": student hidden states must be (N, H) and the head (V, H)");
}

// The chunk's per-row divergence and ∂/∂(student logits) for the three teacher forms.
ChunkResult divergence_chunk(const torch::Tensor& s, int64_t a, int64_t b, bool grad, const TokenTargets& t,
                             const torch::Tensor& weights, double total, const DivergenceOptions& o) {
  const auto wc = weights.index({Slice(a, b)});  // (C)
  if (!(wc.sum().item<double>() > 0)) return {};
  const double T = o.temperature;
  const auto log_p = torch::log_softmax(s / T, 1);  // (C, V)
  torch::Tensor log_bp, log_bq;                        // bucket log-probabilities (C, B)
  torch::Tensor ids;
  if (t.topk_ids.defined()) {
    ids = t.topk_ids.index({Slice(a, b)});  // (C, k)
    const auto rest = log_p.scatter(1, ids, kNegInf).logsumexp(1, /*keepdim=*/true);  // (C, 1)
    log_bp = torch::cat({log_p.gather(1, ids), rest}, 1);
    log_bq = torch::cat({t.topk_logprobs.index({Slice(a, b)}).to(s.scalar_type()),
                         t.rest_logprob.index({Slice(a, b)}).to(s.scalar_type()).unsqueeze(1)}, 1);
  } else {
    const auto tl = t.teacher_logits.defined()
                        ? t.teacher_logits.index({Slice(a, b)}).to(s.scalar_type())
                        : t.teacher_hidden.index({Slice(a, b)}).to(s.scalar_type()).matmul(
                              t.teacher_head.to(s.scalar_type()).t());  // (C, V)
    log_bp = log_p;
    log_bq = torch::log_softmax(tl / T, 1);
  }
  const auto rows = divergence_rows(log_bp, log_bq, o);
  ChunkResult r;
  r.value = (rows.value * wc).sum() * (T * T / total);
  if (!grad) return r;
  const auto p = log_p.exp();
  const auto u_sum = rows.u.sum(1, /*keepdim=*/true);  // (C, 1)
  torch::Tensor g;
  if (ids.defined()) {
    const int64_t k = ids.size(1);
    auto rest = log_bp.index({Slice(), Slice(k, k + 1)});  // (C, 1)
    rest = torch::where(rest > kNegInf, rest, torch::zeros_like(rest));
    g = (log_p - rest).exp() * rows.u.index({Slice(), Slice(k, k + 1)});  // tokens of the rest bucket
    g.scatter_(1, ids, rows.u.index({Slice(), Slice(0, k)}));
    g -= p * u_sum;
  } else {
    g = rows.u - p * u_sum;
  }
  r.grad_logits = g * (wc * (T / total)).unsqueeze(1);  // T² · ∂/∂z · ∂z/∂s (z = s / T)
  return r;
}

ChunkResult nll_chunk(const torch::Tensor& s, int64_t a, int64_t b, bool grad, const torch::Tensor& labels,
                      double total) {
  const auto y = labels.index({Slice(a, b)});  // (C)
  const auto valid = (y >= 0).to(s.scalar_type());
  if (!(valid.sum().item<double>() > 0)) return {};
  const auto yc = y.clamp_min(0).unsqueeze(1);
  const auto log_p = torch::log_softmax(s, 1);
  ChunkResult r;
  r.value = -(log_p.gather(1, yc).squeeze(1) * valid).sum() / total;
  if (!grad) return r;
  auto g = log_p.exp();
  g.scatter_add_(1, yc, -torch::ones_like(yc, s.options()));
  r.grad_logits = g * (valid / total).unsqueeze(1);
  return r;
}

}  // namespace

TokenTargets TokenTargets::from_hidden(torch::Tensor hidden, torch::Tensor head) {
  TokenTargets t;
  t.teacher_hidden = std::move(hidden);
  t.teacher_head = std::move(head);
  return t;
}
TokenTargets TokenTargets::from_logits(torch::Tensor logits) {
  TokenTargets t;
  t.teacher_logits = std::move(logits);
  return t;
}
TokenTargets TokenTargets::from_topk(torch::Tensor ids, torch::Tensor logprobs, torch::Tensor rest) {
  TokenTargets t;
  t.topk_ids = ids.to(torch::kInt64);
  t.topk_logprobs = std::move(logprobs);
  t.rest_logprob = std::move(rest);
  return t;
}
int64_t TokenTargets::rows() const {
  if (topk_ids.defined()) return topk_ids.size(0);
  if (teacher_logits.defined()) return teacher_logits.size(0);
  return teacher_hidden.defined() ? teacher_hidden.size(0) : -1;
}

torch::Tensor chunked_token_divergence(const torch::Tensor& h, const torch::Tensor& w, const TokenTargets& t,
                                       const torch::Tensor& weights, const DivergenceOptions& o, int64_t chunk) {
  o.validate();
  check_student("chunked_token_divergence", h, w, chunk);
  const int64_t n = h.size(0), v = w.size(0);
  const bool shapes_ok =
      t.rows() == n && weights.defined() && weights.numel() == n &&
      (t.topk_ids.defined() ? t.topk_logprobs.sizes() == t.topk_ids.sizes() && t.rest_logprob.numel() == n &&
                                  t.topk_ids.size(1) <= v
       : t.teacher_logits.defined() ? t.teacher_logits.dim() == 2 && t.teacher_logits.size(1) == v
                                    : t.teacher_head.dim() == 2 && t.teacher_head.size(0) == v &&
                                          t.teacher_head.size(1) == t.teacher_hidden.size(1));
  if (!shapes_ok)
    throw DataError("chunked_token_divergence: teacher targets and weights must cover the student's " +
                    std::to_string(n) + " rows over a vocabulary of " + std::to_string(v) +
                    " (hint: teacher and student must share the tokenizer)");
  const auto wts = weights.reshape({n}).to(h.scalar_type());
  const double total = wts.sum().item<double>();
  if (!(total > 0)) return (h.sum() + w.sum()) * 0;
  return run_loss(h, w, chunk, [=](const torch::Tensor& s, int64_t a, int64_t b, bool grad) {
    return divergence_chunk(s, a, b, grad, t, wts, total, o);
  });
}

torch::Tensor chunked_cross_entropy(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& labels,
                                    int64_t chunk) {
  check_student("chunked_cross_entropy", h, w, chunk);
  const int64_t n = h.size(0);
  if (!labels.defined() || labels.numel() != n)
    throw DataError("chunked_cross_entropy: " + std::to_string(n) + " labels expected");
  const auto y = labels.reshape({n}).to(torch::kInt64);
  if ((y >= w.size(0)).any().item<bool>())
    throw DataError("chunked_cross_entropy: a label is outside the vocabulary of " + std::to_string(w.size(0)));
  const double total = (y >= 0).sum().item<double>();
  if (!(total > 0)) return (h.sum() + w.sum()) * 0;
  return run_loss(h, w, chunk, [=](const torch::Tensor& s, int64_t a, int64_t b, bool grad) {
    return nll_chunk(s, a, b, grad, y, total);
  });
}

NllSum chunked_nll_sum(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& labels, int64_t chunk) {
  torch::NoGradGuard no_grad;
  NllSum r;
  r.tokens = (labels >= 0).sum().item<int64_t>();
  if (r.tokens == 0) return r;
  r.nll = chunked_cross_entropy(h, w, labels, chunk).item<double>() * static_cast<double>(r.tokens);
  return r;
}

}  // namespace kd
