#include "kd/models/dynamic_linear.h"

namespace kd {

torch::Tensor DynamicLinearImpl::forward(const torch::Tensor& x) {
  if (packed_.isNone()) return torch::nn::LinearImpl::forward(x);
  require_inference(*this);
  return int8::linear(x, packed_);
}

void DynamicLinearImpl::quantize_int8() { packed_ = int8::pack_linear(weight, bias); }

}  // namespace kd
