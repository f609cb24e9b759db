// A batch after tokenization. The attention mask is what every model and loss uses to ignore padding.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace kd {

struct Batch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor token_type_ids;  // (B, T) int64, 0 = first segment, 1 = second
  torch::Tensor attention_mask;  // (B, T) int64, 1 = token, 0 = padding
  torch::Tensor labels;          // (B) int64, -1 = unlabelled
  std::vector<int64_t> row_ids;  // rows in the dataset, so cached knowledge lines up

  int64_t size() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  Batch to(const torch::Device& device) const;
};

}  // namespace kd
