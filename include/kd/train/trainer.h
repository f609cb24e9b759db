// The supervised training loop shared by teacher fine-tuning and (later) student distillation:
// length-bucketed batches, AdamW with linear warmup/decay, gradient accumulation and clipping,
// periodic evaluation with the best model kept, and checkpoints that a later run resumes from.
//
// Run folder layout (run_dir):
//   best/             the best model so far (a complete model folder, see TextClassifier::save)
//   last/             resume checkpoint: model folder + optimizer.pt + rng.pt (+ rng_cuda.pt on a GPU)
//                     + trainer_state.json
//   metrics.json      every evaluation so far
// Every folder and file is written to a temporary name and renamed, so an interrupted run never
// leaves a half-written checkpoint.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/data/text_dataset.h"
#include "kd/losses/schedule.h"
#include "kd/models/text_classifier.h"
#include "kd/train/optimizer.h"

namespace kd {

struct TrainerOptions {
  std::string run_dir;
  int64_t epochs = 3;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 128;
  int64_t grad_accum = 1;          // micro-batches per optimizer step
  int64_t eval_every = 0;          // optimizer steps between evaluations; 0: at the end of each epoch only
  int64_t checkpoint_every = 200;  // optimizer steps between resume checkpoints; 0: end of epoch only
  uint64_t seed = 13;
  bool resume = false;             // continue from run_dir/last
  bool progress = true;
  int64_t stop_after_steps = 0;    // > 0: save a resume checkpoint and stop after this many optimizer
                                   // steps, as an interruption would (tests resume; splits long runs)
  bool record_step_times = false;  // fill TrainResult::step_seconds (kd bench)
  // Optimizer steps whose loss or gradient norm is NaN or Inf that are skipped (not applied) before the run
  // stops with a TrainError; 0: stop at the first. The stop keeps the last good resume checkpoint.
  int64_t max_nonfinite_steps = 0;
  // best/ holds the latest evaluated model rather than the most accurate one: for training whose
  // objective is not the task (general distillation), where validation accuracy chooses nothing.
  bool keep_latest = false;
  // Asked after each optimizer step with the steps done; true ends fit() there, with no evaluation and
  // no checkpoint (kd bench stops once its timed steps are done). TrainResult::stopped_early is then set.
  std::function<bool(int64_t steps_done)> stop_when;
  // When set, updated before each optimizer step to steps done / steps planned, for losses whose
  // weights or temperature follow a schedule (losses/schedule.h).
  std::shared_ptr<TrainingProgress> training_progress;
  torch::Device device = torch::kCPU;  // the model is moved here; batches are collated on the CPU and moved
  OptimizerOptions optim;
};

// The objective for one batch: a scalar. Teacher fine-tuning uses the cross-entropy on labels.
using LossFn = std::function<torch::Tensor(const ModelOutput& output, const Batch& batch)>;

struct EvalRecord {
  int64_t step = 0;       // optimizer steps done
  double epoch = 0;       // fractional epoch
  double accuracy = 0, macro_f1 = 0, loss = 0;  // on the validation set
  double train_loss = 0;     // mean training loss over the batches since the previous evaluation
  double train_seconds = 0;  // training time so far, evaluations excluded
  nlohmann::json to_json() const;
  static EvalRecord from_json(const nlohmann::json& j);
};

struct TrainResult {
  EvalRecord best;
  std::vector<EvalRecord> history;
  int64_t steps = 0;
  bool stopped_early = false;  // stop_after_steps was reached (resume to finish), or stop_when said so
  double train_seconds = 0;  // training time of all runs of this run folder, evaluations excluded
  double wall_seconds = 0;   // this process: training + evaluation + checkpoints
  // With record_step_times: seconds of each optimizer step of this process, from collating its first
  // micro-batch to the end of the optimizer update (evaluations and checkpoints excluded).
  std::vector<double> step_seconds;
};

class Trainer {
 public:
  Trainer(TextClassifier& model, TrainerOptions options, LossFn loss);
  TrainResult fit(const TextDataset& train, const TextDataset& valid);

 private:
  TextClassifier& model_;
  TrainerOptions options_;
  LossFn loss_;
};

// Cross-entropy over labelled rows (label >= 0); logits (B, C), labels (B).
torch::Tensor classification_loss(const ModelOutput& output, const Batch& batch);

// Parameters and buffers of `module` to/from a safetensors file, names as in named_parameters().
void save_module_state(const torch::nn::Module& module, const std::string& path);
void load_module_state(torch::nn::Module& module, const std::string& path);
// torch::save of an optimizer's state or a tensor, serialised in memory and written by write_file_atomic, so
// that a full disk is an IoError naming the file (torch::save straight to a file aborts the process).
void save_optimizer_file(const torch::optim::Optimizer& optimizer, const std::string& path);
void save_tensor_file(const torch::Tensor& tensor, const std::string& path);

}  // namespace kd
