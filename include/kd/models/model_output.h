// What every model returns. Features are named so that losses can address them from the config.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace kd {

// Which named features a forward pass returns beside the logits; each costs memory and time, so a
// caller asks only for what its losses read. Models fill what they have and ignore the rest.
struct FeatureRequest {
  bool hidden = false;            // "hidden.0" (embedding output) .. "hidden.N" (B, T, H); word students:
                                  // "embeddings" (B, T, E) and "pooled"
  bool attention = false;         // "attn.1" .. "attn.N": attention probabilities (B, heads, T, T)
  bool attention_scores = false;  // "attn_scores.i": QKᵀ/√d before the padding bias and softmax (B, heads, T, T)
  bool qkv = false;               // "query.i", "key.i", "value.i": projections before the head split (B, T, H)

  bool any() const { return hidden || attention || attention_scores || qkv; }
  FeatureRequest& operator|=(const FeatureRequest& o) {
    hidden |= o.hidden;
    attention |= o.attention;
    attention_scores |= o.attention_scores;
    qkv |= o.qkv;
    return *this;
  }
  static FeatureRequest all() { return {true, true, true, true}; }
};

struct ModelOutput {
  torch::Tensor logits;  // (B, C) classifier; (B, T, V) causal LM
  // "hidden.0" is the embedding output, "hidden.i" the output of layer i (B, T, H);
  // "attn.i" are layer i's attention probabilities (B, heads, T, T) (layers count from 1), "attn_scores.i"
  // the scores before the softmax, "query.i" / "key.i" / "value.i" its projections (B, T, H);
  // "pooled" is the pooler output (B, H). Only filled when the caller asks for them.
  std::map<std::string, torch::Tensor> features;

  const torch::Tensor& feature(const std::string& name) const;
};

}  // namespace kd
