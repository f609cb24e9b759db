#include "kd/eval/lm_profile.h"

#include <chrono>
#include <filesystem>

#include "kd/error.h"
#include "kd/eval/model_profile.h"
#include "kd/models/lm_student.h"

namespace fs = std::filesystem;

namespace kd {

nlohmann::json LmProfile::to_json() const {
  return {{"parameters", parameters},
          {"non_embedding_parameters", non_embedding_parameters},
          {"disk_bytes", disk_bytes},
          {"layers", layers},
          {"prefill_tokens_per_s", json_number(prefill_tokens_per_s)},
          {"generate_tokens_per_s", json_number(generate_tokens_per_s)},
          {"prompt_tokens", prompt_tokens},
          {"new_tokens", new_tokens},
          {"warmup", warmup},
          {"repeats", repeats},
          {"threads", threads},
          {"decode_ms", decode_ms}};
}

int64_t path_bytes(const std::string& path) {
  if (fs::is_regular_file(path)) return static_cast<int64_t>(fs::file_size(path));
  return folder_bytes(path);
}

namespace {

struct RunTimes {
  double prefill_s = 0, decode_s = 0;
};

// One prefill of the prompt, then `new_tokens` greedy steps with the KV cache.
RunTimes run_once(Llama& model, const torch::Tensor& ids, int64_t new_tokens) {
  using clock = std::chrono::steady_clock;
  torch::InferenceMode inference;
  KvCache cache;
  const auto t0 = clock::now();
  auto logits = model->forward(ids, {}, &cache).logits;                           // (1, P, V)
  auto next = logits.select(1, logits.size(1) - 1).argmax(-1, /*keepdim=*/true);  // (1, 1)
  const auto t1 = clock::now();
  for (int64_t i = 0; i < new_tokens; ++i) {
    logits = model->forward(next, {}, &cache).logits;  // (1, 1, V)
    next = logits.select(1, 0).argmax(-1, /*keepdim=*/true);
  }
  (void)next.item<int64_t>();
  const auto t2 = clock::now();
  return {std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count()};
}

}  // namespace

LmProfile profile_lm(Llama& model, const std::vector<int64_t>& prompt, const std::string& saved_path,
                     const LmSpeedOptions& o) {
  return profile_lms({{&model, saved_path}}, prompt, o).front();
}

std::vector<LmProfile> profile_lms(const std::vector<LmProfileTarget>& targets, const std::vector<int64_t>& prompt,
                                   const LmSpeedOptions& o) {
  if (o.prompt_tokens <= 0 || o.new_tokens <= 0 || o.repeats <= 0 || o.warmup < 0)
    throw ConfigError("profile: prompt_tokens, new_tokens and repeats must be positive");
  if (static_cast<int64_t>(prompt.size()) < o.prompt_tokens)
    throw ConfigError("profile: the prompt source has " + std::to_string(prompt.size()) + " tokens, fewer than " +
                      std::to_string(o.prompt_tokens));
  const auto ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.begin() + o.prompt_tokens)).unsqueeze(0);
  const size_t n = targets.size();
  std::vector<LmProfile> out(n);
  std::vector<bool> was_training(n);
  std::vector<std::vector<double>> prefill(n);
  for (size_t i = 0; i < n; ++i) {
    Llama& model = *targets[i].model;
    LmProfile& p = out[i];
    p.parameters = count_parameters(model);
    p.non_embedding_parameters = count_non_embedding_parameters(model);
    p.layers = model->options().num_layers;
    p.disk_bytes = targets[i].saved_path.empty() ? 0 : path_bytes(targets[i].saved_path);
    p.prompt_tokens = o.prompt_tokens;
    p.new_tokens = o.new_tokens;
    p.warmup = o.warmup;
    p.repeats = o.repeats;
    p.threads = torch::get_num_threads();
    was_training[i] = model->is_training();
    model->eval();
    for (int64_t w = 0; w < o.warmup; ++w) (void)run_once(model, ids, o.new_tokens);
  }
  for (int64_t r = 0; r < o.repeats; ++r) {
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (k + static_cast<size_t>(r)) % n;  // the order rotates: none always goes first
      const RunTimes t = run_once(*targets[i].model, ids, o.new_tokens);
      prefill[i].push_back(t.prefill_s);
      out[i].decode_ms.push_back(1e3 * t.decode_s);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    (*targets[i].model)->train(was_training[i]);
    out[i].prefill_tokens_per_s = o.prompt_tokens / median(prefill[i]);
    out[i].generate_tokens_per_s = o.new_tokens / (median(out[i].decode_ms) / 1e3);
  }
  return out;
}

}  // namespace kd
