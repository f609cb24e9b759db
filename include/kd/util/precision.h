// Mixed precision for the heavy work (training, caching, evaluation, benchmarks): the matrix products of
// forward passes in bfloat16 under LibTorch's autocast, everything autocast keeps in float32 (norms,
// softmax, losses) and the parameters, gradients and optimizer state in float32. bf16 keeps float32's
// exponent range, so no loss scaling is needed (unlike fp16; Micikevicius et al. 2018, "Mixed Precision
// Training"; Kalamkar et al. 2019 for bf16).
//
// It pays only where the hardware multiplies bf16 natively: a CPU with AVX512-BF16 or AMX-BF16, or a
// CUDA device with bf16. Elsewhere bf16 is emulated and slower than float32, so kd does not run it:
// `--precision auto` picks bf16 only where it pays, and `--precision bf16` on such a machine says so and
// stays float32.
//
// The chosen precision is process-wide (like the thread count): a command resolves it once
// (set_precision), and each forward-pass site opens an AutocastScope, which is a no-op in float32.
#pragma once

#include <torch/torch.h>

#include <string>

#include "kd/models/model_output.h"

namespace kd {

enum class Precision { kFloat32, kBFloat16 };

std::string precision_name(Precision p);  // "float32", "bf16"

// Whether /proc/cpuinfo lists avx512_bf16 or amx_bf16 (the bf16 instructions), and which.
struct CpuBf16 {
  bool avx512_bf16 = false, amx_bf16 = false;
  bool any() const { return avx512_bf16 || amx_bf16; }
};
CpuBf16 cpu_bf16_support();

struct PrecisionChoice {
  Precision precision = Precision::kFloat32;
  std::string reason;  // why, for the log and reports: "asked for", "this CPU has amx_bf16", ...
};
// `flag` is "fp32", "bf16" or "auto"; ConfigError naming `where` otherwise.
PrecisionChoice resolve_precision(const std::string& flag, const torch::Device& device,
                                  const std::string& where = "--precision");

// The process-wide precision the AutocastScopes follow (float32 until set).
void set_precision(Precision p);
Precision current_precision();

// Forward passes inside the scope run under autocast to bf16 on `device`'s type when the current
// precision is bf16; nothing happens in float32. Open it around forward passes only: a backward pass
// under autocast would re-cast the gradients' operations.
class AutocastScope {
 public:
  explicit AutocastScope(const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

// The output with its floating tensors in float32 (a no-op for float32 ones), for losses and metrics.
ModelOutput float32_output(ModelOutput out);

}  // namespace kd
