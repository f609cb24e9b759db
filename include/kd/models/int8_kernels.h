// The int8 kernels the pinned LibTorch ships (its quantized engine: fbgemm behind "x86" and "fbgemm",
// oneDNN, qnnpack), reached through the operator dispatcher by their schema names, since they are
// not part of the at:: C++ API. Weights are int8 with one scale per output row (kd/io/int8_rows.h);
// activations are quantized on every call to uint8 over the tensor's own range ("dynamic"), using 7 of
// the 8 bits (reduce_range), which keeps AVX2's 16-bit pairwise sums from saturating.
//
// Inference only: nothing here has a gradient. CPU tensors only.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/torch.h>

#include <string>
#include <tuple>
#include <vector>

namespace kd::int8 {

// The quantized engine in use, e.g. "x86" (fbgemm), "onednn", "qnnpack".
std::string engine();

// A float weight (N, K) quantized per row and packed with its float bias (N, or undefined) for
// linear(): opaque, held by the caller.
c10::IValue pack_linear(const torch::Tensor& weight, const torch::Tensor& bias);
// x (..., K) float -> (..., N) float.
torch::Tensor linear(const torch::Tensor& x, const c10::IValue& packed);

// One LSTM cell's weights (w_ih (4H, in), w_hh (4H, H), biases (4H)) for lstm().
c10::IValue lstm_cell(const torch::Tensor& w_ih, const torch::Tensor& w_hh, const torch::Tensor& b_ih,
                      const torch::Tensor& b_hh);

struct LstmResult {
  torch::Tensor output;  // (B, T, D*H) batch-first, or the packed data (sum of lengths, D*H)
  torch::Tensor h, c;    // (layers*D, B, H), in the order rows were given
};
// An LSTM over x (B, T, in), batch-first; `cells` holds layers*D entries (layer 0 forward, layer 0
// backward, layer 1 forward, ...); the initial state is zero.
LstmResult lstm(const torch::Tensor& x, const std::vector<c10::IValue>& cells, int64_t layers, bool bidirectional,
                int64_t hidden);
// The same over a packed sequence's data (N, in) and batch_sizes; h and c are in the packed (sorted) order.
LstmResult lstm_packed(const torch::Tensor& data, const torch::Tensor& batch_sizes, const std::vector<c10::IValue>& cells,
                       int64_t layers, bool bidirectional, int64_t hidden);

}  // namespace kd::int8
