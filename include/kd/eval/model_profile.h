// Size and speed of a classifier, measured the same way for teacher and student so that the
// report's ratios compare like with like: parameters, checkpoint bytes on disk, analytic FLOPs, and
// wall-clock forward time on real examples (batch 1 latency, batch 64 throughput) with the number
// of intra-op threads stated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/data/text_dataset.h"
#include "kd/models/text_classifier.h"

namespace kd {

struct SpeedOptions {
  // Untimed passes first (allocator, lazy initialisation, caches, thread wake-up): at least `warmup`
  // passes and at least `warmup_seconds` of them, since 20 passes of a 1-ms student are only 20 ms.
  int64_t warmup = 20;
  double warmup_seconds = 1.0;
  int64_t repeats = 20;      // timed passes; the median is reported
  int64_t large_batch = 64;  // rows per batch for the throughput figure

  // ConfigError naming `where` unless repeats >= 1, large_batch >= 1, warmup >= 0 and warmup_seconds a
  // finite number >= 0 (an infinite warm-up never ends, a NaN one never starts the clock).
  void check(const std::string& where) const;
};

struct ModelProfile {
  int64_t parameters = 0;
  int64_t disk_bytes = 0;          // all files of the saved model folder
  double mean_tokens = 0;          // real (unpadded) tokens per example of the sample
  double flops_per_example = 0;    // model.flops_per_example(mean_tokens); 0 when the model does not say
  double latency_ms_b1 = 0;        // median over repeats of one-example forward passes
  double latency_ms_b1_p90 = 0;    // 90th percentile of the same passes
  double throughput_b64 = 0;       // examples/s from the median time of a large_batch-row forward pass
  int threads = 0;                 // torch intra-op threads during the measurement
  int64_t large_batch = 64;
  int64_t warmup = 0, repeats = 0;  // passes of each kind: untimed, then timed
  double warmup_seconds = 0;        // least time spent in untimed passes of each kind
  std::string device = "cpu";
  // Each timed pass, in round order (round r of every model measured in turns: see profile_models);
  // per-round ratios between models and their uncertainty come from these (paired_ratio).
  std::vector<double> b1_ms, b64_ms;

  // Non-finite figures are written as null (JSON has no NaN).
  nlohmann::json to_json() const;
  static ModelProfile from_json(const nlohmann::json& j);
};

// Measures `model` in eval() mode under torch::InferenceMode on batches collated like the trainer's
// (padded to the longest row of the batch), cycling through the examples of `sample` (which must be
// tokenized for this model). `saved_dir` is the model's folder on disk ("" skips the size). The
// module's train/eval mode is restored afterwards. Throws DataError on an empty sample, IoError if
// saved_dir does not exist, ConfigError on non-positive options.
ModelProfile profile_model(TextClassifier& model, const std::string& saved_dir, const TextDataset& sample,
                           const SpeedOptions& options = {});

// One model to measure with profile_models.
struct ProfileTarget {
  TextClassifier* model = nullptr;  // not owned
  std::string saved_dir;            // its folder on disk; "" skips the size
  // The same rows as profile_models' sample, in the same order, tokenized with this model's own
  // tokenizer and max_length (models that read text differently); null: the shared sample. Not owned.
  const TextDataset* sample = nullptr;
};

// profile_model for several models on the same sample, measured in turns: each warm-up and timed
// round runs one pass of every model, in order, so that the machine's drift over the measurement
// falls on all of them alike rather than on whichever model was being measured. It does not remove
// the spread between processes: on the 2-vCPU machine of 2026-11-29 the same 1-ms BiLSTM measured
// 0.77-1.34 ms at batch 1 in separate runs. A target with its own sample reads the same rows through it
// (DataError if it holds another number of rows). Returns the profiles in order.
std::vector<ModelProfile> profile_models(const std::vector<ProfileTarget>& targets, const TextDataset& sample,
                                         const SpeedOptions& options = {});

// Total size of the regular files under `dir`, recursively (IoError if it is not a folder).
int64_t folder_bytes(const std::string& dir);

// Statistics of timed passes, as every kd measurement reports them: the median, and the nearest-rank
// percentile (q in (0, 1]). Both return 0 for no samples.
double median(std::vector<double> v);
double percentile(std::vector<double> v, double q);

// A speed ratio between two models measured in turns, round by round: num_ms[r] / den_ms[r] (e.g.
// teacher / student latency: the student's speed-up). `median` is the median of the per-round ratios
// (each round's two passes ran moments apart, so slow drift of the machine cancels in the ratio);
// [low, high] is a 95% percentile-bootstrap interval of that median over rounds (2,000 resamples,
// fixed seed: the same figures give the same interval); [min, max] the extreme rounds. The interval
// covers the variation within one process; the spread between processes (a fresh process on the same
// machine may run the same model 30% slower) is larger and is not in it. All NaN without rounds.
struct RatioEstimate {
  double median = NAN, low = NAN, high = NAN, min = NAN, max = NAN;
  int64_t rounds = 0;
  nlohmann::json to_json() const;
};
RatioEstimate paired_ratio(const std::vector<double>& num_ms, const std::vector<double>& den_ms);

// A JSON number, or null when `v` is NaN or infinite.
nlohmann::json json_number(double v);

}  // namespace kd
