#include "kd/losses/soft_label_losses.h"

#include <cmath>
#include <limits>
#include <string>

#include "kd/error.h"

namespace kd {

namespace {

std::string shape_of(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

// Student and teacher must describe the same positions and classes; a mismatch means the teacher
// (or its cache) was built for another label set or sequence length, which is a data problem.
void check_pair(const char* loss, const torch::Tensor& student, const torch::Tensor& teacher) {
  if (!student.defined() || !teacher.defined())
    throw DataError(std::string(loss) + ": student and teacher logits are both required");
  if (student.dim() < 1 || student.sizes() != teacher.sizes())
    throw DataError(std::string(loss) + ": student logits " + shape_of(student) + " and teacher logits " +
                    shape_of(teacher) + " must have the same shape (..., C)");
}

void check_temperature(const char* loss, double temperature) {
  if (!(std::isfinite(temperature) && temperature > 0))
    throw ConfigError(std::string(loss) + ": temperature " + std::to_string(temperature) +
                      " must be a finite number > 0");
}

// The teacher's log-probabilities at temperature T with the classes it gives no mass to (logit −inf,
// outside a cached top-k) set to log 0 := 0 so that 0 · log 0 terms stay 0 instead of NaN, in the
// forward pass and in the backward pass alike. Returns (p_t, safe log p_t, p_t > 0).
struct TeacherDist {
  torch::Tensor p, log_p, support;
};

TeacherDist teacher_dist(const torch::Tensor& teacher, double temperature) {
  const auto log_p = torch::log_softmax(teacher / temperature, -1);  // (..., C)
  const auto p = log_p.exp();
  const auto support = p > 0;
  return {p, torch::where(support, log_p, torch::zeros_like(log_p)), support};
}

}  // namespace

torch::Tensor kl_div_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          double temperature) {
  check_pair("kl_div_loss", student_logits, teacher_logits);
  check_temperature("kl_div_loss", temperature);
  const auto t = teacher_dist(teacher_logits, temperature);
  const auto log_ps = torch::log_softmax(student_logits / temperature, -1);  // (..., C)
  // The where (not a product with the mask) keeps a student −inf outside the teacher's support from
  // turning 0 · inf into NaN.
  const auto term = torch::where(t.support, t.p * (t.log_p - log_ps), torch::zeros_like(log_ps));
  return term.sum(-1) * (temperature * temperature);  // (...)
}

torch::Tensor soft_cross_entropy_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                      double temperature) {
  check_pair("soft_cross_entropy_loss", student_logits, teacher_logits);
  check_temperature("soft_cross_entropy_loss", temperature);
  const auto t = teacher_dist(teacher_logits, temperature);
  const auto log_ps = torch::log_softmax(student_logits / temperature, -1);  // (..., C)
  const auto term = torch::where(t.support, t.p * log_ps, torch::zeros_like(log_ps));
  return -term.sum(-1) * (temperature * temperature);  // (...)
}

// A −inf teacher logit says "not in the cached top-k", not "the logit is −inf": a squared error to it
// would be infinite, so those classes are left out and the mean is over the classes the teacher gave.
// A position whose teacher has no finite class gives 0. NaN teacher logits are not masked (they
// propagate, so that a broken cache is noticed).
torch::Tensor logit_mse_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                             double /*temperature*/) {
  check_pair("logit_mse_loss", student_logits, teacher_logits);
  const auto keep = teacher_logits.ne(-std::numeric_limits<double>::infinity());  // (..., C)
  const auto diff = torch::where(keep, student_logits - teacher_logits, torch::zeros_like(student_logits));
  const auto count = keep.sum(-1).to(student_logits.scalar_type()).clamp_min(1);  // (...)
  return diff.square().sum(-1) / count;                                            // (...)
}

torch::Tensor masked_mean(const torch::Tensor& per_position, const torch::Tensor& mask) {
  if (!per_position.defined() || !mask.defined() || per_position.sizes() != mask.sizes())
    throw DataError("masked_mean: loss " + (per_position.defined() ? shape_of(per_position) : "(undefined)") +
                    " and mask " + (mask.defined() ? shape_of(mask) : "(undefined)") + " must have the same shape");
  const auto keep = mask.ne(0);
  // where, not a product: a padded position may hold inf/NaN (e.g. a teacher row of padding) and must
  // not poison the mean. The sum keeps the autograd graph, so an empty mask still gives 0 with a
  // (zero) gradient and backward() works.
  const auto kept = torch::where(keep, per_position, torch::zeros_like(per_position));
  const auto count = keep.sum().to(per_position.scalar_type()).clamp_min(1);
  return kept.sum() / count;  // ()
}

}  // namespace kd
