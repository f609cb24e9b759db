// What an optimizer step of every kd trainer shares (the classifier Trainer, train/trainer.h, and kd
// distill-lm's loop, train/lm_trainer.h): which rows of a global batch this process trains on, the batch's
// loss as one number on every rank, backward, the gradients summed across ranks, and clipping. In one
// process it is plain backward and clip. Each trainer keeps its own rule for a non-finite loss; this core
// makes sure that every rank sees the same value and so takes the same decision.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "kd/train/data_parallel.h"

namespace kd {

struct RowSlice {
  int64_t first = 0, end = 0;  // this rank's rows [first, end) of the global batch
  double share = 1.0;          // (end - first) / rows: the weight of this rank's mean loss
  bool empty() const { return end == first; }
};

class TrainStep {
 public:
  // `module` holds the trained parameters (those without requires_grad keep no gradient and are skipped).
  explicit TrainStep(torch::nn::Module& module) : module_(module), dp_(data_parallel()) {}

  // This rank's part of a global batch of `rows` (all of it in one process): data_parallel.h's shard_rows.
  RowSlice slice(int64_t rows) const {
    RowSlice s;
    s.end = rows;
    if (dp_ && rows > 0) {
      std::tie(s.first, s.end) = dp_->shard(rows);
      s.share = static_cast<double>(s.end - s.first) / static_cast<double>(rows);
    }
    return s;
  }

  // `loss`: the mean over this rank's rows, a scalar (undefined when the slice is empty). The weighted means
  // of the ranks sum to the global batch's mean, which is returned, the same on every rank. When it is
  // finite, backpropagates loss · share / accum (accumulating into the gradients); otherwise nothing.
  double backward(const torch::Tensor& loss, const RowSlice& s, int64_t accum = 1) {
    torch::Tensor weighted = loss;
    if (dp_ && loss.defined()) weighted = loss * s.share;
    const double local = weighted.defined() ? weighted.item<double>() : 0.0;
    const double global = dp_ ? dp_->sum(local) : local;
    if (std::isfinite(global) && weighted.defined())
      (accum > 1 ? weighted / static_cast<double>(accum) : weighted).backward();
    return global;
  }

  // Ends the window of micro-batches: the gradients summed across ranks (nothing in one process), then
  // clipped to `clip_norm` when it is > 0. Returns the norm before clipping (0 without clipping), the same on
  // every rank; a NaN or Inf norm is the caller's to handle.
  double reduce_and_clip(double clip_norm) {
    if (dp_) dp_->allreduce_gradients(module_);
    if (clip_norm <= 0) return 0.0;
    return torch::nn::utils::clip_grad_norm_(module_.parameters(), clip_norm);
  }

 private:
  torch::nn::Module& module_;
  DataParallel* dp_;
};

}  // namespace kd
