// The training loop of kd distill-lm (lm_distill.h): one student, distilled or as the baseline, over
// token windows in a seeded order, with AdamW, linear warmup/decay, gradient clipping, and a curve of
// training loss and held-out perplexity.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kd/eval/lm_report.h"
#include "kd/losses/chunked_lm_loss.h"
#include "kd/models/llama.h"
#include "kd/train/lm_distill.h"

namespace kd {

// The teacher's targets for the next-token positions 0..T−2 of the given windows, rows in (window,
// position) order: (B · (T − 1)) rows. Null where the teacher runs inline on whatever is scored.
using CachedTargets = std::function<TokenTargets(const torch::Tensor& window_index)>;

struct LmTrainSetup {
  const LmDistillOptions* options = nullptr;
  Llama teacher{nullptr};
  torch::Tensor windows;            // (N, T) int64 training windows
  CachedTargets cached;             // token mode with a top-k cache; null: inline teacher
  std::vector<int64_t> curve_stream;  // held-out tokens for the curve's perplexity
  bool baseline = false;            // cross-entropy only on the windows
  // Every options->checkpoint_every steps the loop's whole state goes here (StagedDir), and with
  // options->resume training continues from it: weights, optimizer, the epoch's order, the gkd coin, the
  // curve so far, so that the student ends bit-identical to an uninterrupted run's. Empty: no checkpoints.
  std::string checkpoint_dir;
};

struct LmTrainResult {
  std::vector<LmCurvePoint> curve;
  double seconds = 0;
  int64_t steps = 0, tokens = 0;
};

// Trains `student` in place. Under torchrun (train/data_parallel.h) each rank trains on its slice of every
// batch of windows through the shared step core (train/train_step.h); rank 0 alone measures the curve and
// writes checkpoints.
LmTrainResult train_lm_student(Llama& student, const LmTrainSetup& setup);

}  // namespace kd
