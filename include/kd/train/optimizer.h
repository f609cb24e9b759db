// AdamW with the usual transformer fine-tuning conventions, and the linear warmup/decay schedule.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace kd {

struct OptimizerOptions {
  double lr = 5e-5;
  double weight_decay = 0.01;  // decoupled (Loshchilov & Hutter 2019); not applied to vectors
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double warmup_ratio = 0.06;  // fraction of optimizer steps spent warming up from 0 to lr
  double clip_norm = 1.0;      // global gradient-norm clip; <= 0 disables
};

// Two parameter groups: matrices (dim >= 2) with weight decay; vectors (biases, norm parameters) without.
std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& module, const OptimizerOptions& options);

// Linear warmup to the peak over `warmup_steps`, then linear decay to 0 at `total_steps`.
class LinearSchedule {
 public:
  LinearSchedule(double peak_lr, int64_t warmup_steps, int64_t total_steps);
  double lr_at(int64_t step) const;  // step counts optimizer updates from 0
  // Sets every group's learning rate for the given step.
  void apply(torch::optim::Optimizer& optimizer, int64_t step) const;

 private:
  double peak_;
  int64_t warmup_, total_;
};

}  // namespace kd
