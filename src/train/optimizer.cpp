#include "kd/train/optimizer.h"

#include <algorithm>

namespace kd {

std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& module, const OptimizerOptions& o) {
  std::vector<torch::Tensor> decay, plain;
  for (const auto& p : module.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    // Matrices decay; vectors (biases, LayerNorm gains and shifts) do not. For BERT this is exactly
    // the usual "no decay on bias and LayerNorm" rule, without depending on parameter names.
    (p.value().dim() < 2 ? plain : decay).push_back(p.value());
  }
  auto base = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps);
  auto with_decay = std::make_unique<torch::optim::AdamWOptions>(base);
  with_decay->weight_decay(o.weight_decay);
  auto without = std::make_unique<torch::optim::AdamWOptions>(base);
  without->weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::move(with_decay));
  groups.emplace_back(plain, std::move(without));
  return std::make_unique<torch::optim::AdamW>(groups, base);
}

LinearSchedule::LinearSchedule(double peak_lr, int64_t warmup_steps, int64_t total_steps)
    : peak_(peak_lr), warmup_(std::max<int64_t>(warmup_steps, 0)), total_(std::max<int64_t>(total_steps, 1)) {}

double LinearSchedule::lr_at(int64_t step) const {
  if (step < warmup_) return peak_ * static_cast<double>(step + 1) / static_cast<double>(warmup_ + 1);
  const double left = static_cast<double>(total_ - step) / static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
  return peak_ * std::clamp(left, 0.0, 1.0);
}

void LinearSchedule::apply(torch::optim::Optimizer& optimizer, int64_t step) const {
  const double lr = lr_at(step);
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace kd
