// The classic distillation objective (Hinton et al. 2015): per row
//   labelled row:    α · soft(student, teacher; T) + (1 − α) · CE(student, label)
//   unlabelled row:  soft(student, teacher; T)            (label −1: the teacher is all there is)
// averaged over the rows that carry a signal. α = 0 is the no-teacher baseline: the teacher is not
// consulted and unlabelled rows are skipped. The soft term is one of the soft_loss_registry() entries.
// T and α may follow a schedule over training (losses/schedule.h).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "kd/io/config.h"
#include "kd/losses/schedule.h"
#include "kd/util/registry.h"

namespace kd {

// (student_logits (..., C), teacher_logits (..., C), T) -> per-position loss (...)
using SoftLossFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, double)>;

// "kl" (default), "soft_ce", "mse".
const Registry<SoftLossFn>& soft_loss_registry();

struct DistillLossOptions {
  std::string soft = "kl";   // soft_loss_registry() key
  Schedule temperature = 2.0;  // > 0 throughout
  Schedule alpha = 0.5;        // in [0, 1] throughout

  // From a config section {soft_loss, temperature, alpha} (numbers or schedules); ConfigError naming the
  // key for T <= 0, α outside [0, 1] anywhere during training, or an unknown soft loss.
  static DistillLossOptions from(ConfigNode& section);
};

struct DistillLossParts {
  torch::Tensor total;  // scalar, what is back-propagated
  // Detached scalars for logs, left on the device: reading them (.item()) waits for the device, so the
  // training step never does.
  torch::Tensor soft;  // mean soft term over all rows (0 when the loss has no teacher term)
  torch::Tensor hard;  // mean CE over labelled rows (0 when none)
};

class DistillLoss {
 public:
  explicit DistillLoss(DistillLossOptions options);
  // student_logits (B, C); teacher_logits (B, C), may be undefined when α = 0 throughout; labels (B)
  // int64, −1 = none. `progress`: the fraction of training done, for scheduled T and α.
  DistillLossParts operator()(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                              const torch::Tensor& labels, double progress = 0) const;
  const DistillLossOptions& options() const { return options_; }
  // Whether α is ever > 0 (the teacher's logits are then fetched on every step).
  bool needs_teacher() const { return options_.alpha.max() > 0; }

 private:
  DistillLossOptions options_;
  SoftLossFn soft_;
};

}  // namespace kd
