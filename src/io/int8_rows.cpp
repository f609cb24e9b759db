#include "kd/io/int8_rows.h"

#include "kd/error.h"

namespace kd {

Int8Rows quantize_rows(const torch::Tensor& w) {
  if (!w.defined() || w.dim() < 2 || !torch::isFloatingType(w.scalar_type()))
    throw Error("quantize_rows: expected a float tensor of 2 or more dimensions");
  torch::NoGradGuard no_grad;
  const auto rows = w.detach().to(torch::kCPU, torch::kFloat32).reshape({w.size(0), -1});  // (R, N)
  auto scales = rows.abs().amax(1) / 127.0f;                                                 // (R)
  scales = torch::where(scales > 0, scales, torch::ones_like(scales));
  // A folder read back is quantized again from its dequantized rows, whose largest element is 127·s
  // rounded to float; for about 1% of scales that gives back a neighbour of s, not s. Taking the fixed
  // point of s -> (127·s)/127 (reached after one step in practice) makes the read-back scales, and so the
  // int8 model, identical to the one written.
  for (int i = 0; i < 4; ++i) {
    auto next = (scales * 127.0f) / 127.0f;
    if (torch::equal(next, scales)) break;
    scales = next;
  }
  auto q = torch::round(rows / scales.unsqueeze(1)).clamp_(-127, 127).to(torch::kInt8);
  return {q.reshape(w.sizes()).contiguous(), scales.contiguous()};
}

torch::Tensor dequantize_rows(const Int8Rows& q, torch::ScalarType dtype) {
  if (q.values.scalar_type() != torch::kInt8 || q.values.dim() < 2 || q.scales.dim() != 1 ||
      q.scales.size(0) != q.values.size(0))
    throw Error("dequantize_rows: expected int8 values (R, ...) and R scales");
  const auto rows = q.values.reshape({q.values.size(0), -1}).to(torch::kFloat32);  // (R, N)
  return (rows * q.scales.to(torch::kFloat32).unsqueeze(1)).reshape(q.values.sizes()).to(dtype);
}

}  // namespace kd
