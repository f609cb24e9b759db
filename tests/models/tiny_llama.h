// A tiny random LLaMA decoder for tests: 2 layers, width 32, 4 query / 2 key-value heads, context 64.
#pragma once

#include <cstdint>
#include <string>

#include "kd/models/llama.h"

namespace kd::test {

inline LlamaOptions tiny_llama_options(int64_t vocab = 50, bool tied = true) {
  LlamaOptions o;
  o.vocab_size = vocab;
  o.hidden_size = 32;
  o.intermediate_size = 48;
  o.num_layers = 2;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  o.max_position = 64;
  o.rope_theta = 10000.0;
  o.tie_embeddings = tied;
  return o;
}

// Weights from torch's generator seeded with `seed`; norm weights drawn away from 1 so that a missing
// or misplaced one shows.
inline Llama tiny_llama(const LlamaOptions& o, uint64_t seed = 3) {
  torch::manual_seed(seed);
  Llama m(o);
  m->eval();
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters())
    if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
  return m;
}

}  // namespace kd::test
