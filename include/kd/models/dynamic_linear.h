// A torch::nn::Linear that can switch to int8 (dynamic quantization) for inference. Its parameters,
// names and float forward are Linear's own, so a model that holds DynamicLinear layers trains, saves
// and loads exactly as with Linear; quantize_int8() packs the weight for LibTorch's int8 kernel
// (kd/models/int8_kernels.h) and forward() then runs that instead.
#pragma once

#include <torch/torch.h>

#include "kd/models/int8_kernels.h"
#include "kd/models/quantize.h"

namespace kd {

class DynamicLinearImpl : public torch::nn::LinearImpl, public Int8Quantizable {
 public:
  using torch::nn::LinearImpl::LinearImpl;

  // x (..., in) -> (..., out). Once quantized: float32 out, CPU only, and an error in training mode
  // (the int8 kernel has no gradient).
  torch::Tensor forward(const torch::Tensor& x);

  // Packs the current weight and bias; later changes to them are not seen. The float parameters stay
  // (they hold the dequantized-equivalent model for save()).
  void quantize_int8() override;
  bool int8() const { return !packed_.isNone(); }

 private:
  c10::IValue packed_;
};
TORCH_MODULE(DynamicLinear);

}  // namespace kd
