// How far apart two float32 computations of the same function may land, derived from the computation
// rather than from the difference one CPU happened to print.
//
// Why they differ at all. Float addition is not associative, and every library picks its summation
// order at run time: MKL and oneDNN by instruction set (AVX2, AVX-512, AMX) and by CPU vendor, ATen's
// vectorised kernels by ATEN_CPU_CAPABILITY, all of them by matrix shape (a KV cache multiplies other
// shapes than one full pass) and blocking. So kd and PyTorch/transformers, or kd with and without a
// cache, agree only to rounding, and the size of that rounding differs between machines: a bound read off
// one machine's output (1e-5, 1e-4) fails on the next one for no fault of the code.
//
// The bound. A dot product or sum of n float32 terms carries a rounding error of at most about
// n·u·Σ|x_i·y_i| (u = 2^-24, the unit roundoff), but that worst case needs every rounding to go the same
// way; rounding errors behave like independent zero-mean variables, so the error grows like √n·u
// (Higham & Mary, "A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019:
// λ·√n·u with probability at least 1 − 2·exp(−λ²/2)). A network applies such reductions layer after
// layer; with residual connections and normalisation each layer passes the error it received on and adds
// its own, so the bound grows linearly with depth (a worst case: measured errors grow more slowly). The
// error is relative to the size of the values summed, which for one element of the output is its own size
// when it stands out (the "massive activations" of an LLM's residual stream reach 2·10^4 where the rest
// is about 10^2) and the tensor's typical size otherwise (a logit near 0 is still a sum of terms of the
// usual size). Two computations (ours and the reference) each contribute one such error. So element i may
// differ by
//
//     tol_i = c · eps32 · √n · depth · (|ref_i| + rms(ref)),      eps32 = 2^-23 = 2·u  (one u per side)
//
//   n       the longest reduction in the computation (hidden or intermediate width, classes, time steps);
//   depth   the number of layers the compared value has passed through (at least 1);
//   c       kSafetyFactor = 8: a layer is several reductions in a row (attention: projections, scores,
//           softmax, weighted sum, output projection; then the MLP), and λ ≈ 3 keeps the √n estimate a
//           bound for practically every element of large outputs.
//
// Measured on an AMD EPYC (Zen 4, AVX-512), with the default kernels and with the isa_default ctest
// variant's (tests/CMakeLists.txt), the largest |diff_i| / tol_i is: 0.44 for all-MiniLM-L6-v2 against
// transformers (padding rows of layer 5; real rows below 0.1), 0.08 for SmolLM2-135M's hidden states and
// 0.01 for its logits against transformers, 0.04 for the BiLSTM/TextCNN students against PyTorch, 0.02 for
// the tiny LLaMA's KV cache against one full pass, 0.04 for the losses against float64 PyTorch. The
// failures reported from an Intel Xeon (AVX-512/AMX) are far inside it: 1.14e-5 for the tiny LLaMA's KV
// cache against one full pass (logits of size ~10, bound ≥ 2e-5·(|x| + 8)) and 1.47e-4 for SmolLM2's logits
// against transformers (bound ≥ 9e-3).
//
// It stays a test: a real bug (a wrong or skipped layer, a missing 1/√d scale, a misplaced norm, a position
// off by one) changes values by a sizeable fraction of their size, i.e. by about 1/(c·eps32·√n·depth) ≈
// 10^2 to 10^4 times the bound for the models here. The parity tests check it where it is cheap: the
// previous layer's output is more than 10 bounds from the next one's (SmolLM2: at least 70, BERT: more than
// 100), another first token moves the tiny LLaMA's last logits by more than 100 bounds, and the students'
// rows differ from their mean by more than 100. Exact things stay exact: token ids, safetensors bytes and
// decoded GGUF tensors are compared for equality, never with a tolerance.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace kd::test {

inline constexpr double kEps32 = 1.0 / (1 << 23);           // 2^-23 = 1.19e-7
inline constexpr double kEps64 = 1.0 / 4503599627370496.0;  // 2^-52 = 2.22e-16
inline constexpr double kSafetyFactor = 8.0;

// c · eps · √n · depth: the bound relative to the size of the values (see above), for precision `eps`.
inline double relative_rounding_bound(double eps, int64_t reduction_length, int64_t depth, double c = kSafetyFactor) {
  return c * eps * std::sqrt(static_cast<double>(std::max<int64_t>(1, reduction_length))) *
         static_cast<double>(std::max<int64_t>(1, depth));
}

// c · eps · √n · depth · magnitude: the bound for one value (or a whole tensor) of size `magnitude`.
inline double rounding_tolerance(double eps, int64_t reduction_length, int64_t depth, double magnitude,
                                 double c = kSafetyFactor) {
  return relative_rounding_bound(eps, reduction_length, depth, c) * magnitude;
}

// The float32 bound for values of size `magnitude` (a scalar such as a loss, or a whole tensor's scale).
inline double fp32_tolerance(int64_t reduction_length, int64_t depth, double magnitude, double c = kSafetyFactor) {
  return rounding_tolerance(kEps32, reduction_length, depth, magnitude, c);
}

// max_i |got_i − ref_i| / tol_i with tol_i = fp32_tolerance(n, depth, |ref_i| + rms(ref)): how much of the
// float32 bound the worst element uses. At most 1 passes; the parity tests print it.
inline double tolerance_ratio(const torch::Tensor& got, const torch::Tensor& ref, int64_t reduction_length,
                              int64_t depth, double c = kSafetyFactor) {
  if (ref.numel() == 0) return 0.0;
  const auto r = ref.detach().to(torch::kFloat64);
  const auto diff = (got.detach().to(torch::kFloat64) - r).abs();
  const auto scale = r.abs() + r.square().mean().sqrt();
  const double bound = relative_rounding_bound(kEps32, reduction_length, depth, c);
  // A NaN anywhere must fail, not vanish in max(): compare it as infinitely far.
  if (!torch::isfinite(diff).all().item<bool>()) return INFINITY;
  return (diff / (scale * bound).clamp_min(1e-300)).max().item<double>();
}

}  // namespace kd::test
