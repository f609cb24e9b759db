#include "kd/data/batch.h"

namespace kd {

Batch Batch::to(const torch::Device& device) const {
  Batch b = *this;
  b.input_ids = input_ids.to(device);
  if (token_type_ids.defined()) b.token_type_ids = token_type_ids.to(device);
  b.attention_mask = attention_mask.to(device);
  if (labels.defined()) b.labels = labels.to(device);
  return b;
}

}  // namespace kd
