#include "kd/losses/distill_loss.h"

#include <cmath>
#include <string>
#include <utility>

#include "kd/error.h"
#include "kd/losses/soft_label_losses.h"

namespace kd {

namespace {

const ScheduleBounds kTemperatureBounds{0, 1e300, true, "a temperature must be a finite number > 0, e.g. 2 (Hinton et al. use 1..20)"};
const ScheduleBounds kAlphaBounds{0, 1, false, "alpha must be in [0, 1]: the weight of the soft term on labelled rows (0 = no teacher)"};

// A schedule built in code rather than read from a config: the same bounds, checked here.
void check(const Schedule& s, const ScheduleBounds& b, const char* name) {
  if (s.outside(b))
    throw ConfigError(located("distillation loss", std::string(name) + " " + s.describe() + " is invalid", b.meaning));
}

}  // namespace

const Registry<SoftLossFn>& soft_loss_registry() {
  static const Registry<SoftLossFn> r = [] {
    Registry<SoftLossFn> reg("soft loss");
    reg.add("kl", kl_div_loss);
    reg.add("soft_ce", soft_cross_entropy_loss);
    reg.add("mse", logit_mse_loss);
    return reg;
  }();
  return r;
}

DistillLossOptions DistillLossOptions::from(ConfigNode& section) {
  DistillLossOptions o;
  o.soft = section.get<std::string>("soft_loss", o.soft);
  soft_loss_registry().get(o.soft, section.where("soft_loss"));  // throws, listing the known ones
  o.temperature = Schedule::from(section, "temperature", 2.0, kTemperatureBounds);
  o.alpha = Schedule::from(section, "alpha", 0.5, kAlphaBounds);
  return o;
}

// Options built in code (not from a config) are checked here too, so a DistillLoss is always valid.
DistillLoss::DistillLoss(DistillLossOptions options) : options_(std::move(options)) {
  check(options_.temperature, kTemperatureBounds, "temperature");
  check(options_.alpha, kAlphaBounds, "alpha");
  soft_ = soft_loss_registry().get(options_.soft, "distillation loss: soft_loss");
}

DistillLossParts DistillLoss::operator()(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                         const torch::Tensor& labels, double progress) const {
  if (!student_logits.defined() || student_logits.dim() != 2)
    throw DataError("distillation loss: student logits must be (B, C)");
  const int64_t rows = student_logits.size(0), classes = student_logits.size(1);
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != rows || labels.scalar_type() != torch::kInt64)
    throw DataError("distillation loss: labels must be int64 (B) with B = " + std::to_string(rows));
  if (rows > 0) {
    // One host read for both ends of the range (each .item() waits for the device).
    const auto [min, max] = torch::aminmax(labels);
    const auto range = torch::stack({min, max}).cpu();
    const auto lo = range[0].item<int64_t>(), hi = range[1].item<int64_t>();
    if (lo < -1 || hi >= classes)
      throw DataError("distillation loss: label " + std::to_string(lo < -1 ? lo : hi) + " is outside [-1, " +
                      std::to_string(classes) + ") (-1 = unlabelled row)");
  }

  // Cross-entropy for every row; an unlabelled row gathers class 0 (never index with −1) and is then
  // dropped by the where/mask below, so its value never reaches the total.
  const auto labelled = labels.ge(0);                                                 // (B)
  const auto log_p = torch::log_softmax(student_logits, -1);                          // (B, C)
  const auto ce = -log_p.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1);  // (B)

  DistillLossParts parts;
  parts.hard = masked_mean(ce.detach(), labelled);  // 0 when no row is labelled

  const double a = options_.alpha.at(progress);
  if (a == 0) {
    // The baseline: only labelled rows carry a signal. With none, masked_mean gives 0 that still has a
    // graph back to the student, so backward() is a no-op rather than an error.
    parts.total = masked_mean(ce, labelled);
    parts.soft = torch::zeros({}, ce.options());
    return parts;
  }

  if (!teacher_logits.defined() || teacher_logits.sizes() != student_logits.sizes())
    throw DataError("distillation loss: teacher logits must be given with the student's shape (B, C) when alpha > 0");
  const auto soft = soft_(student_logits, teacher_logits, options_.temperature.at(progress));  // (B)
  // α = 1 leaves CE out entirely rather than multiplying it by 0 (an inf CE would give NaN).
  const auto per_row = a < 1 ? torch::where(labelled, a * soft + (1 - a) * ce, soft) : soft;  // (B)
  // Every row carries the soft signal; masked_mean with all-ones is the mean, and 0 for B = 0.
  const auto all = torch::ones_like(per_row, torch::kBool);
  parts.total = masked_mean(per_row, all);
  parts.soft = masked_mean(soft.detach(), all);
  return parts;
}

}  // namespace kd
