// Perplexity of a causal LM on a token stream: exp of the mean negative log-likelihood of each token
// given the ones before it. The stream is cut into non-overlapping windows of `seq_len` tokens; inside a
// window every token but the first is predicted from the window's earlier tokens (so each predicted
// token sees between 1 and seq_len − 1 tokens of context; the first token of every window is not
// scored). The logits are formed a chunk of tokens at a time (chunked_lm_loss.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/models/llama.h"

namespace kd {

struct PerplexityOptions {
  int64_t seq_len = 512;
  int64_t batch_size = 4;
  int64_t chunk = 512;          // rows of logits at a time
  bool progress = true;
  std::string label = "perplexity";  // progress bar label
};

struct PerplexityResult {
  double perplexity = 0, mean_nll = 0;
  int64_t scored_tokens = 0, input_tokens = 0;
  double seconds = 0, tokens_per_second = 0;  // input tokens through the model per second
  nlohmann::json to_json() const;
};

PerplexityResult evaluate_perplexity(Llama& model, const std::vector<int64_t>& stream, const PerplexityOptions& o);

}  // namespace kd
