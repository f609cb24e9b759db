// A causal-LM teacher's next-token distributions cached on disk as their top-k: for every scored
// position of every training window, the k most likely token ids (int32) and their log-probabilities
// (fp16) at the distillation temperature, and the log of the probability mass left over (float32,
// clamped below at −100 so that it is never −inf). The divergence is then taken over k + 1 buckets
// (chunked_lm_loss.h): the missing mass is kept as one explicit "rest" bucket, never spread over or
// dropped.
//
// File layout (written atomically): "KDLMTOPK", u32 version, u64 length of a JSON header, the header
// (the key fields, rows, k, payload sizes and an FNV-1a 64 checksum of the compressed payload and the
// key), then the zlib-compressed payload: ids (R, k) i32, log-probs (R, k) f16, rest (R) f32. Opening
// checks magic, version (newer: FormatError), sizes (a truncated file is a FormatError), the checksum,
// then the key: another teacher, tokenizer or setting is a ConfigError and other data a DataError, each
// naming the field, both values and the fix.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kd/losses/chunked_lm_loss.h"
#include "kd/models/llama.h"

namespace kd {

constexpr int64_t kLmTopkCacheVersion = 1;

struct LmCacheKey {
  std::string teacher;    // FNV-1a 64 (hex) of the teacher's file (or model.safetensors), + its layer count
  std::string tokenizer;  // FNV-1a 64 (hex) of the token strings
  std::string data;       // fingerprint_ids of the windows' token stream
  int64_t windows = 0, seq_len = 0, top_k = 0;
  double temperature = 1.0;

  nlohmann::json to_json() const;
  static LmCacheKey from_json(const nlohmann::json& j, const std::string& where);
};

class LmTopkCache {
 public:
  // Runs `teacher` over `windows` (N, T) and writes the cache for their N · (T − 1) next-token
  // positions (row = window · (T − 1) + position).
  static void write(const std::string& path, Llama& teacher, const torch::Tensor& windows, const LmCacheKey& key,
                    int64_t batch_size, int64_t chunk, bool progress);
  // Reads and verifies (see above); IoError for a missing file.
  static LmTopkCache open(const std::string& path, const LmCacheKey& expected);

  // The targets of the given windows (B) in (window, position) order.
  TokenTargets targets(const torch::Tensor& window_index) const;
  const LmCacheKey& key() const { return key_; }
  int64_t rows() const { return ids_.size(0); }

 private:
  LmCacheKey key_;
  torch::Tensor ids_;       // (R, k) int64
  torch::Tensor logprobs_;  // (R, k) float32
  torch::Tensor rest_;      // (R) float32
};

}  // namespace kd

namespace kd {

class BpeTokenizer;
// The key for `teacher` (loaded from `teacher_path`, a file or folder) over `windows` (N, T).
LmCacheKey make_lm_cache_key(const std::string& teacher_path, const Llama& teacher, const BpeTokenizer& tokenizer,
                             const torch::Tensor& windows, int64_t top_k, double temperature);

}  // namespace kd
