// Size and speed of a causal LM, measured the same way for teacher and student: parameters (all and
// non-embedding), bytes on disk, and batch-1 tokens/s with the KV cache for prefill (one forward pass
// over a prompt) and for generation (greedy decoding one token at a time after the prompt). Each figure
// is the median of `repeats` timed runs after `warmup` untimed ones, with the intra-op thread count
// stated. Several models are measured in turns (profile_lms), round by round, so that a speed-up is the
// median of per-round ratios with its interval (paired_ratio in model_profile.h).
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
  std::vector<double> decode_ms;  // each timed round's decoding time (prefill excluded)
  nlohmann::json to_json() const;
};

// `prompt` supplies the prompt ids (its first prompt_tokens; ConfigError if shorter). `saved_path` is
// the model's folder or file on disk ("" skips the size). Train/eval mode is restored afterwards.
LmProfile profile_lm(Llama& model, const std::vector<int64_t>& prompt, const std::string& saved_path,
                     const LmSpeedOptions& options = {});

// The same for several models measured in turns: every model's warm-up first, then `repeats` rounds,
// each timing every model once, in an order that rotates from round to round.
struct LmProfileTarget {
  Llama* model;
  std::string saved_path;
};
std::vector<LmProfile> profile_lms(const std::vector<LmProfileTarget>& targets, const std::vector<int64_t>& prompt,
                                   const LmSpeedOptions& options = {});

// Bytes of a file, or of all regular files under a folder.
int64_t path_bytes(const std::string& path);

}  // namespace kd
