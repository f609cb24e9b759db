// Incremental decoding with the KV cache, and the choice of the next token (greedy, temperature,
// top-k, top-p).
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "kd/error.h"
#include "kd/models/llama.h"

namespace kd {

int64_t sample_next_token(const torch::Tensor& logits, const GenerateOptions& o, torch::Generator& gen) {
  // logits: (V)
  if (o.temperature <= 0) return logits.argmax().item<int64_t>();
  auto scaled = logits.to(torch::kFloat32) / o.temperature;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (o.top_k > 0 && o.top_k < scaled.size(0)) {
    const auto kth = std::get<0>(scaled.topk(o.top_k)).min();
    scaled = scaled.masked_fill(scaled < kth, neg_inf);
  }
  if (o.top_p < 1.0) {
    // Keep the most likely tokens until their probability reaches top_p (always at least one).
    auto [sorted, order] = scaled.sort(/*dim=*/0, /*descending=*/true);
    const auto cum = sorted.softmax(0).cumsum(0);
    auto drop = (cum - sorted.softmax(0)) >= o.top_p;  // mass before this token already reaches top_p
    scaled = scaled.index_fill(0, order.masked_select(drop), neg_inf);
  }
  const auto probs = scaled.softmax(0);
  return torch::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

std::vector<int64_t> LlamaImpl::generate(const std::vector<int64_t>& prompt, const GenerateOptions& o,
                                         const std::function<bool(int64_t)>& on_token) {
  if (prompt.empty()) throw DataError("llama: generate needs a prompt of at least one token");
  if (o.max_new_tokens < 0) throw ConfigError("llama: max_new_tokens must not be negative");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature) || !(o.top_p > 0 && o.top_p <= 1) || o.top_k < 0)
    throw ConfigError("llama: temperature must be >= 0, top_p in (0, 1] and top_k >= 0");
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.max_new_tokens;
  if (total > options_.max_position)
    throw DataError("llama: prompt of " + std::to_string(prompt.size()) + " tokens plus " +
                    std::to_string(o.max_new_tokens) + " new ones exceed the context of " +
                    std::to_string(options_.max_position) + " tokens (hint: shorten the prompt or ask for fewer)");
  for (auto id : prompt)
    if (id < 0 || id >= options_.vocab_size)
      throw DataError("llama: token id " + std::to_string(id) + " is outside the vocabulary of " +
                      std::to_string(options_.vocab_size));

  torch::NoGradGuard no_grad;
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  KvCache cache;
  std::vector<int64_t> out;
  auto input = torch::tensor(prompt, torch::kInt64).unsqueeze(0);  // (1, T)
  while (static_cast<int64_t>(out.size()) < o.max_new_tokens) {
    const auto logits = forward(input, {}, &cache).logits;  // (1, T, V)
    const int64_t next = sample_next_token(logits[0][logits.size(1) - 1], o, gen);
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (next == o.eos_id) break;
    input = torch::tensor({next}, torch::kInt64).unsqueeze(0);
  }
  return out;
}

}  // namespace kd
