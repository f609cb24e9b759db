#include "kd/losses/feature_losses.h"

#include <ATen/Dispatch.h>

#include <cmath>
#include <limits>
#include <string>

#include "kd/error.h"

namespace kd {

namespace {

std::string shape_of(const torch::Tensor& t) {
  if (!t.defined()) return "(undefined)";
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

// Checks a student/teacher pair of hidden states (rank 3: (B, T, H)) or attention scores (rank 4:
// (B, h, T, T)) and the mask, and returns the mask as bool (B, T) on the student's device. A mismatch
// means the two models (or a cache) were run on different batches, layers or head layouts: a data problem.
torch::Tensor check(const char* fn, const char* what, const torch::Tensor& s, const torch::Tensor& t,
                    const torch::Tensor& mask, int64_t rank, bool same_width) {
  const std::string pair = std::string("student ") + what + " " + shape_of(s) + " and teacher " + what + " " +
                           shape_of(t);
  const auto fail = [&](const std::string& problem, const std::string& hint = "") {
    throw DataError(located(fn, pair + " " + problem, hint));
  };
  const std::string layout = rank == 3 ? "(B, T, H)" : "(B, h, T, T)";
  if (!s.defined() || !t.defined() || s.dim() != rank || t.dim() != rank) fail("must both be " + layout);
  if (!s.is_floating_point())
    throw DataError(located(fn, std::string("student ") + what + " " + shape_of(s) + " must be floating point, not " +
                                    c10::toString(s.scalar_type())));
  if (rank == 4 && (s.size(2) != s.size(3) || t.size(2) != t.size(3))) fail("must both be " + layout);
  const int64_t t_dim = rank == 3 ? 1 : 2;  // where T is
  if (s.size(0) != t.size(0) || s.size(t_dim) != t.size(t_dim)) fail("must agree in B and T");
  if (rank == 3 && same_width && s.size(2) != t.size(2))
    fail("must have the same width H", "project the student to the teacher's width first");
  if (rank == 4 && s.size(1) != t.size(1))
    fail("have different head counts (" + std::to_string(s.size(1)) + " vs " + std::to_string(t.size(1)) + ")",
         "a head mapping is needed to pair the student's heads with the teacher's");
  const int64_t B = s.size(0), T = s.size(t_dim);
  if (!mask.defined() || mask.dim() != 2 || mask.size(0) != B || mask.size(1) != T)
    throw DataError(located(fn, "mask " + shape_of(mask) + " must be (B, T) = (" + std::to_string(B) + ", " +
                                    std::to_string(T) + ") for " + pair));
  return mask.ne(0).to(s.device());
}

// The teacher as a constant in the student's dtype and on its device.
torch::Tensor constant(const torch::Tensor& teacher, const torch::Tensor& student) {
  return teacher.detach().to(student.device(), student.scalar_type());
}

// x where keep, else 0. A select, not a product: a padded value of inf or NaN must not turn into NaN,
// and the gradient at a padded position is exactly 0.
torch::Tensor zero_padding(const torch::Tensor& x, const torch::Tensor& keep) {
  return torch::where(keep, x, 0.0);
}

// sum / max(count, 1): the average over `count` kept terms, 0 (with gradient) when none is kept.
torch::Tensor average(const torch::Tensor& sum, const torch::Tensor& count) {
  return sum / count.to(sum.scalar_type()).clamp_min(1);
}

double lowest_finite(torch::ScalarType type) {
  double v = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, type, "lowest_finite",
                                  [&] { v = static_cast<double>(std::numeric_limits<scalar_t>::lowest()); });
  return v;
}

// Mean over heads and real queries of KL(softmax(t) ‖ softmax(s)), both softmaxes over the real keys only.
// s, t (B, h, T, T) raw scores, keep (B, T). A score whose query or key is padding is replaced by the lowest
// finite value before log_softmax, not by −inf: exp of it is exactly 0, so a real query's distribution is
// over its real keys only, and a query row with no real key stays a finite (uniform) row instead of
// −inf − (−inf) = NaN. The where on the KL terms then drops those rows and keys, so a padded key adds exactly
// 0 (its 0 · (log 0 − log 0) is never formed) and no gradient reaches a padded score.
torch::Tensor masked_attention_kl(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& keep) {
  const int64_t B = keep.size(0), T = keep.size(1);
  const auto pair = keep.view({B, 1, T, 1}) & keep.view({B, 1, 1, T});  // (B, 1, T, T) real query and key
  const double low = lowest_finite(s.scalar_type());
  const auto log_ps = torch::log_softmax(torch::where(pair, s, low), -1);  // (B, h, T, T)
  const auto log_pt = torch::log_softmax(torch::where(pair, t, low), -1);
  const auto kl = zero_padding(log_pt.exp() * (log_pt - log_ps), pair);
  return average(kl.sum(), keep.sum() * s.size(1));
}

// The relation scores x_r x_rᵀ / √d_r of the R parts of x (B, T, H), d_r = H / R: (B, R, T, T). Padded
// positions are zeroed first, so that what they hold cannot reach a real position's row through the product.
torch::Tensor relation_scores(const torch::Tensor& x, const torch::Tensor& keep, int64_t heads) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2) / heads;
  const auto parts = zero_padding(x, keep.unsqueeze(-1)).reshape({B, T, heads, d}).transpose(1, 2);  // (B, R, T, d)
  return torch::matmul(parts, parts.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
}

}  // namespace

torch::Tensor hidden_mse(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask) {
  const auto keep = check("hidden_mse", "hidden states", student, teacher, mask, 3, true);
  const auto k = keep.unsqueeze(-1);  // (B, T, 1)
  const auto diff = zero_padding(student, k) - zero_padding(constant(teacher, student), k);
  return average(diff.square().sum(), keep.sum() * student.size(2));
}

// The norms are clamped at 1e-8 each, as torch.nn.functional.cosine_similarity does, so that a zero vector
// gives cos = 0 rather than NaN (padded positions are zero vectors here, and dropped afterwards).
torch::Tensor hidden_cosine(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask) {
  const auto keep = check("hidden_cosine", "hidden states", student, teacher, mask, 3, true);
  const auto k = keep.unsqueeze(-1);
  const auto s = zero_padding(student, k), t = zero_padding(constant(teacher, student), k);
  const double eps = 1e-8;
  const auto cos = (s * t).sum(-1) / (s.norm(2, -1).clamp_min(eps) * t.norm(2, -1).clamp_min(eps));  // (B, T)
  return average(zero_padding(1 - cos, keep).sum(), keep.sum());
}

torch::Tensor attention_score_mse(const torch::Tensor& student_scores, const torch::Tensor& teacher_scores,
                                  const torch::Tensor& mask) {
  const auto keep = check("attention_score_mse", "attention scores", student_scores, teacher_scores, mask, 4, true);
  const int64_t B = keep.size(0), T = keep.size(1);
  const auto pair = keep.view({B, 1, T, 1}) & keep.view({B, 1, 1, T});  // (B, 1, T, T)
  const auto diff = zero_padding(student_scores, pair) - zero_padding(constant(teacher_scores, student_scores), pair);
  return average(diff.square().sum(), pair.sum() * student_scores.size(1));
}

torch::Tensor attention_kl(const torch::Tensor& student_scores, const torch::Tensor& teacher_scores,
                           const torch::Tensor& mask) {
  const auto keep = check("attention_kl", "attention scores", student_scores, teacher_scores, mask, 4, true);
  return masked_attention_kl(student_scores, constant(teacher_scores, student_scores), keep);
}

torch::Tensor relation_kl(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask,
                          int64_t relation_heads) {
  if (relation_heads < 1)
    throw ConfigError("relation_kl: relation_heads " + std::to_string(relation_heads) + " must be at least 1");
  const auto keep = check("relation_kl", "states", student, teacher, mask, 3, false);
  for (const auto* x : {&student, &teacher}) {
    const int64_t width = x->size(2);
    if (width == 0 || width % relation_heads != 0)
      throw DataError(located("relation_kl", std::string(x == &student ? "student" : "teacher") + " width " +
                                                 std::to_string(width) + " of " + shape_of(*x) +
                                                 " is not a positive multiple of relation_heads " +
                                                 std::to_string(relation_heads)));
  }
  const auto t = constant(teacher, student);
  return masked_attention_kl(relation_scores(student, keep, relation_heads), relation_scores(t, keep, relation_heads),
                             keep);
}

}  // namespace kd
