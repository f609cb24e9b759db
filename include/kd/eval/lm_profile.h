// Size and speed of a causal LM, measured the same way for teacher and student: parameters (all and
// non-embedding), bytes on disk, and batch-1 tokens/s with the KV cache for prefill (one forward pass
// over a prompt) and for generation (greedy decoding one token at a time after the prompt). Each figure
// is the median of `repeats` timed runs after `warmup` untimed ones, with the intra-op thread count
// stated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/models/llama.h"

namespace kd {

struct LmSpeedOptions {
  int64_t prompt_tokens = 128;
  int64_t new_tokens = 64;
  int64_t warmup = 1;
  int64_t repeats = 5;
};

struct LmProfile {
  int64_t parameters = 0, non_embedding_parameters = 0;
  int64_t disk_bytes = 0;  // the saved folder or file (0 when not saved)
  int64_t layers = 0;
  double prefill_tokens_per_s = 0;   // prompt_tokens / median prefill time
  double generate_tokens_per_s = 0;  // new_tokens / median decoding time (prefill excluded)
  int64_t prompt_tokens = 0, new_tokens = 0, warmup = 0, repeats = 0;
  int threads = 0;
  nlohmann::json to_json() const;
};

// `prompt` supplies the prompt ids (its first prompt_tokens; ConfigError if shorter). `saved_path` is
// the model's folder or file on disk ("" skips the size). Train/eval mode is restored afterwards.
LmProfile profile_lm(Llama& model, const std::vector<int64_t>& prompt, const std::string& saved_path,
                     const LmSpeedOptions& options = {});

// Bytes of a file, or of all regular files under a folder.
int64_t path_bytes(const std::string& path);

}  // namespace kd
