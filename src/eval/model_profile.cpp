#include "kd/eval/model_profile.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/util/log.h"
#include "kd/util/precision.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// Puts the module back in the mode it was found in, also when a forward pass throws.
class ModeGuard {
 public:
  explicit ModeGuard(torch::nn::Module& m) : module_(m), was_training_(m.is_training()) { m.eval(); }
  ~ModeGuard() { module_.train(was_training_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

double number(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j.at(key).is_number()) return NAN;
  return j.at(key).get<double>();
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<size_t>(rank, 1)) - 1];
}

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json ModelProfile::to_json() const {
  return {{"parameters", parameters},
          {"disk_bytes", disk_bytes},
          {"mean_tokens", json_number(mean_tokens)},
          {"flops_per_example", json_number(flops_per_example)},
          {"latency_ms_b1", json_number(latency_ms_b1)},
          {"latency_ms_b1_p90", json_number(latency_ms_b1_p90)},
          {"throughput_b64", json_number(throughput_b64)},
          {"large_batch", large_batch},
          {"warmup", warmup},
          {"warmup_seconds", warmup_seconds},
          {"repeats", repeats},
          {"threads", threads},
          {"device", device},
          {"b1_ms", b1_ms},
          {"b64_ms", b64_ms}};
}

ModelProfile ModelProfile::from_json(const nlohmann::json& j) {
  ModelProfile p;
  p.parameters = j.value("parameters", int64_t{0});
  p.disk_bytes = j.value("disk_bytes", int64_t{0});
  p.mean_tokens = number(j, "mean_tokens");
  p.flops_per_example = number(j, "flops_per_example");
  p.latency_ms_b1 = number(j, "latency_ms_b1");
  p.latency_ms_b1_p90 = number(j, "latency_ms_b1_p90");
  p.throughput_b64 = number(j, "throughput_b64");
  p.large_batch = j.value("large_batch", int64_t{64});
  p.warmup = j.value("warmup", int64_t{0});
  p.warmup_seconds = j.value("warmup_seconds", 0.0);
  p.repeats = j.value("repeats", int64_t{0});
  p.threads = j.value("threads", 0);
  p.device = j.value("device", std::string("cpu"));
  p.b1_ms = j.value("b1_ms", std::vector<double>{});
  p.b64_ms = j.value("b64_ms", std::vector<double>{});
  return p;
}

nlohmann::json RatioEstimate::to_json() const {
  return {{"median", json_number(median)}, {"low", json_number(low)}, {"high", json_number(high)},
          {"min", json_number(min)},       {"max", json_number(max)}, {"rounds", rounds}};
}

RatioEstimate paired_ratio(const std::vector<double>& num_ms, const std::vector<double>& den_ms) {
  RatioEstimate e;
  std::vector<double> r;
  for (size_t i = 0; i < std::min(num_ms.size(), den_ms.size()); ++i)
    if (num_ms[i] > 0 && den_ms[i] > 0 && std::isfinite(num_ms[i]) && std::isfinite(den_ms[i]))
      r.push_back(num_ms[i] / den_ms[i]);
  e.rounds = static_cast<int64_t>(r.size());
  if (r.empty()) return e;
  e.median = median(r);
  e.min = *std::min_element(r.begin(), r.end());
  e.max = *std::max_element(r.begin(), r.end());
  constexpr int kResamples = 2000;
  std::mt19937_64 rng(20261206);
  std::uniform_int_distribution<size_t> pick(0, r.size() - 1);
  std::vector<double> medians(kResamples), sample(r.size());
  for (auto& m : medians) {
    for (auto& x : sample) x = r[pick(rng)];
    m = median(sample);
  }
  std::sort(medians.begin(), medians.end());
  e.low = medians[static_cast<size_t>(0.025 * kResamples)];
  e.high = medians[static_cast<size_t>(0.975 * kResamples) - 1];
  return e;
}

int64_t folder_bytes(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError(located(dir, "is not a model folder", "save the model before profiling it"));
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  if (ec) throw IoError(located(dir, "cannot be listed: " + ec.message()));
  return total;
}

void SpeedOptions::check(const std::string& where) const {
  if (warmup < 0 || !(warmup_seconds >= 0) || !std::isfinite(warmup_seconds) || repeats < 1 || large_batch < 1)
    throw ConfigError(located(where, strf("repeats %lld, warm-up %lld passes and %s s, batch %lld: need repeats >= 1, "
                                          "warm-up passes >= 0, warm-up seconds a finite number >= 0, batch >= 1",
                                          static_cast<long long>(repeats), static_cast<long long>(warmup),
                                          short_number(warmup_seconds).c_str(), static_cast<long long>(large_batch))));
}

std::vector<ModelProfile> profile_models(const std::vector<ProfileTarget>& targets, const TextDataset& sample,
                                         const SpeedOptions& options) {
  if (sample.size() == 0)
    throw DataError(located(sample.source(), "cannot profile a model on an empty sample"));
  options.check("profile");
  if (targets.empty()) return {};
  const size_t m = targets.size();
  const int64_t n = static_cast<int64_t>(sample.size());
  // Round r gives every model row r of its own sample, so the samples must be the same rows.
  auto sample_of = [&](size_t i) -> const TextDataset& { return targets[i].sample ? *targets[i].sample : sample; };
  for (size_t i = 0; i < m; ++i)
    if (sample_of(i).size() != sample.size())
      throw DataError(located(sample_of(i).source(), strf("model %zu's sample has %zu rows, the shared one %zu: a "
                                                          "model's own sample must hold the same rows",
                                                          i, sample_of(i).size(), sample.size())));

  std::vector<ModelProfile> profiles(m);
  std::vector<torch::Device> devices;
  std::vector<std::unique_ptr<ModeGuard>> modes;
  std::vector<std::unique_ptr<BucketBatcher>> batchers;
  BucketBatcherOptions bo;
  bo.batch_size = options.large_batch;
  bo.shuffle = false;
  for (size_t i = 0; i < m; ++i) {
    TextClassifier& model = *targets[i].model;
    ModelProfile& p = profiles[i];
    torch::nn::Module& module = model.module();
    const auto params = module.parameters();
    for (const auto& t : params) p.parameters += t.numel();
    if (!targets[i].saved_dir.empty()) p.disk_bytes = folder_bytes(targets[i].saved_dir);
    double tokens = 0;
    for (const auto& ex : sample_of(i).examples()) tokens += static_cast<double>(ex.encoding.size());
    p.mean_tokens = tokens / static_cast<double>(n);
    p.flops_per_example = model.flops_per_example(p.mean_tokens);
    p.threads = torch::get_num_threads();
    p.large_batch = options.large_batch;
    p.warmup = options.warmup;
    p.warmup_seconds = options.warmup_seconds;
    p.repeats = options.repeats;
    devices.push_back(params.empty() ? torch::Device(torch::kCPU) : params.front().device());
    p.device = devices.back().str();
    modes.push_back(std::make_unique<ModeGuard>(module));
    batchers.push_back(std::make_unique<BucketBatcher>(sample_of(i), bo, model.tokenizer().pad_id()));
  }
  torch::InferenceMode inference;

  // Wall-clock time of one forward pass of model i. Batches are built beforehand so that only the
  // model is timed; on a GPU the queue is drained, since kernels return before they finish.
  auto time_ms = [&](size_t i, const Batch& batch) {
    const bool cuda = devices[i].is_cuda();
    if (cuda) torch::cuda::synchronize();
    AutocastScope autocast(devices[i]);  // bf16 where the command chose it (kd/util/precision.h)
    const auto start = std::chrono::steady_clock::now();
    auto logits = targets[i].model->forward(batch).logits;  // (B, C)
    if (cuda) torch::cuda::synchronize();
    const auto stop = std::chrono::steady_clock::now();
    (void)logits;
    return std::chrono::duration<double, std::milli>(stop - start).count();
  };
  // Untimed rounds: `one_round(r)` for r = 0, 1, ... until both the count and the time are reached.
  auto warm_up = [&](const std::function<void(int64_t)>& one_round) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t r = 0;; ++r) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (r >= options.warmup && elapsed >= options.warmup_seconds) break;
      one_round(r);
    }
  };
  // The models take turns pass by pass (round r: model 0, 1, ...), so that a change of machine state
  // during the measurement (clock, caches, a neighbour's load) falls on all of them alike instead of
  // on whichever model was measured at that moment.
  auto measure = [&](const std::function<Batch(size_t, int64_t)>& batch_at) {
    std::vector<std::vector<double>> ms(m);
    warm_up([&](int64_t r) {
      for (size_t i = 0; i < m; ++i) time_ms(i, batch_at(i, r % options.repeats));
    });
    for (int64_t r = 0; r < options.repeats; ++r)
      for (size_t i = 0; i < m; ++i) {
        const Batch batch = batch_at(i, r);
        ms[i].push_back(time_ms(i, batch));
      }
    return ms;
  };

  // Batch 1: a different real example each pass, so the median covers typical lengths.
  std::vector<std::vector<Batch>> singles(m);
  for (size_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < options.repeats; ++r) singles[i].push_back(batchers[i]->collate({r % n}).to(devices[i]));
  const auto b1 = measure([&](size_t i, int64_t r) { return singles[i][static_cast<size_t>(r)]; });

  // Large batches: consecutive rows of the sample (wrapping around), i.e. unsorted lengths, padded
  // to the longest row as a server batching incoming requests would.
  const auto big = measure([&](size_t i, int64_t r) {
    std::vector<int64_t> idx(static_cast<size_t>(options.large_batch));
    for (int64_t k = 0; k < options.large_batch; ++k) idx[static_cast<size_t>(k)] = (r * options.large_batch + k) % n;
    return batchers[i]->collate(idx).to(devices[i]);
  });

  for (size_t i = 0; i < m; ++i) {
    profiles[i].b1_ms = b1[i];
    profiles[i].b64_ms = big[i];
    profiles[i].latency_ms_b1 = median(b1[i]);
    profiles[i].latency_ms_b1_p90 = percentile(b1[i], 0.9);
    const double big_ms = median(big[i]);
    // A pass too fast for the clock has no meaningful rate: NaN, written as null.
    profiles[i].throughput_b64 = big_ms > 0 ? static_cast<double>(options.large_batch) * 1000.0 / big_ms : NAN;
  }
  return profiles;
}

ModelProfile profile_model(TextClassifier& model, const std::string& saved_dir, const TextDataset& sample,
                           const SpeedOptions& options) {
  return profile_models({{&model, saved_dir}}, sample, options).front();
}

}  // namespace kd
