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
          {"threads", threads}};
}

int64_t path_bytes(const std::string& path) {
  if (fs::is_regular_file(path)) return static_cast<int64_t>(fs::file_size(path));
  return folder_bytes(path);
}

LmProfile profile_lm(Llama& model, const std::vector<int64_t>& prompt, const std::string& saved_path,
                     const LmSpeedOptions& o) {
  if (o.prompt_tokens <= 0 || o.new_tokens <= 0 || o.repeats <= 0 || o.warmup < 0)
    throw ConfigError("profile: prompt_tokens, new_tokens and repeats must be positive");
  if (static_cast<int64_t>(prompt.size()) < o.prompt_tokens)
    throw ConfigError("profile: the prompt source has " + std::to_string(prompt.size()) + " tokens, fewer than " +
                      std::to_string(o.prompt_tokens));
  LmProfile p;
  p.parameters = count_parameters(model);
  p.non_embedding_parameters = count_non_embedding_parameters(model);
  p.layers = model->options().num_layers;
  p.disk_bytes = saved_path.empty() ? 0 : path_bytes(saved_path);
  p.prompt_tokens = o.prompt_tokens;
  p.new_tokens = o.new_tokens;
  p.warmup = o.warmup;
  p.repeats = o.repeats;
  p.threads = torch::get_num_threads();

  const bool was_training = model->is_training();
  model->eval();
  torch::InferenceMode inference;
  const auto ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.begin() + o.prompt_tokens)).unsqueeze(0);
  std::vector<double> prefill, decode;
  using clock = std::chrono::steady_clock;
  for (int64_t r = 0; r < o.warmup + o.repeats; ++r) {
    KvCache cache;
    const auto t0 = clock::now();
    auto logits = model->forward(ids, {}, &cache).logits;  // (1, P, V)
    auto next = logits.select(1, logits.size(1) - 1).argmax(-1, /*keepdim=*/true);  // (1, 1)
    const auto t1 = clock::now();
    for (int64_t i = 0; i < o.new_tokens; ++i) {
      logits = model->forward(next, {}, &cache).logits;  // (1, 1, V)
      next = logits.select(1, 0).argmax(-1, /*keepdim=*/true);
    }
    (void)next.item<int64_t>();
    const auto t2 = clock::now();
    if (r < o.warmup) continue;
    prefill.push_back(std::chrono::duration<double>(t1 - t0).count());
    decode.push_back(std::chrono::duration<double>(t2 - t1).count());
  }
  model->train(was_training);
  p.prefill_tokens_per_s = o.prompt_tokens / median(prefill);
  p.generate_tokens_per_s = o.new_tokens / median(decode);
  return p;
}

}  // namespace kd
