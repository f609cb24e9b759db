// Symmetric int8 with one scale per row: the one rule kd uses for int8 weights, both on disk (a
// quantized model folder's model.safetensors) and in the int8 kernels (kd/models/int8_kernels.h), so
// the bytes a folder stores are the bytes the kernels multiply.
//
// Row r of a float tensor w (rows, ...) becomes scale_r = max|w_r| / 127 (moved by at most a float
// rounding to a value that quantizing the dequantized row reproduces) and q = round(w / scale_r)
// clamped to [-127, 127] (zero point 0; -128 is never used, so negation is exact). A row of zeros gets
// scale 1. The error of one element is at most scale_r / 2. For a Linear weight (out, in) a row is an
// output channel, for an embedding table a token, for a Conv1d kernel (out, in, k) an output channel.
//
// In a safetensors file the int8 values keep the tensor's name (dtype I8) and the scales sit beside
// them as "<name>.int8_scale" (F32, (rows)); SafeTensorsFile::load dequantizes such a pair to float.
#pragma once

#include <torch/torch.h>

namespace kd {

inline constexpr const char* kInt8ScaleSuffix = ".int8_scale";

struct Int8Rows {
  torch::Tensor values;  // int8, the shape of the source tensor
  torch::Tensor scales;  // float32 (rows)
};

// w: a float tensor of 2 or more dimensions, on any device (the result is on the CPU).
Int8Rows quantize_rows(const torch::Tensor& w);
// values * scales per row, as `dtype`.
torch::Tensor dequantize_rows(const Int8Rows& q, torch::ScalarType dtype = torch::kFloat32);

}  // namespace kd
