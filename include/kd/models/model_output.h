// What every model returns. Features are named so that losses can address them from the config.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace kd {

struct ModelOutput {
  torch::Tensor logits;  // (B, C) classifier; (B, T, V) causal LM
  // "hidden.0" is the embedding output, "hidden.i" the output of layer i (B, T, H);
  // "attn.i" are layer i's attention probabilities (B, heads, T, T) (layers count from 1);
  // "pooled" is the pooler output (B, H). Only filled when the caller asks for them.
  std::map<std::string, torch::Tensor> features;

  const torch::Tensor& feature(const std::string& name) const;
};

}  // namespace kd
