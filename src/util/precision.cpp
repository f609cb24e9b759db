#include "kd/util/precision.h"

#include <ATen/autocast_mode.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "kd/error.h"

namespace kd {

namespace {

std::atomic<Precision> g_precision{Precision::kFloat32};

}  // namespace

std::string precision_name(Precision p) { return p == Precision::kBFloat16 ? "bf16" : "float32"; }

CpuBf16 cpu_bf16_support() {
  CpuBf16 s;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) {
      s.avx512_bf16 |= w == "avx512_bf16";
      s.amx_bf16 |= w == "amx_bf16";
    }
    break;  // every processor lists the same flags
  }
  return s;
}

PrecisionChoice resolve_precision(const std::string& flag, const torch::Device& device, const std::string& where) {
  if (flag != "fp32" && flag != "bf16" && flag != "auto")
    throw ConfigError(located(where + " " + flag, "unknown precision", "known: fp32, bf16, auto"));
  if (flag == "fp32") return {Precision::kFloat32, "asked for"};
  std::string has, lacks;
  if (device.is_cuda()) {
    if (torch::cuda::is_available() && at::autocast::is_autocast_available(c10::DeviceType::CUDA))
      has = "the GPU runs bf16 autocast";
    else
      lacks = "no CUDA bf16 autocast here";
  } else {
    const auto cpu = cpu_bf16_support();
    if (cpu.any())
      has = std::string("this CPU has ") + (cpu.amx_bf16 ? "amx_bf16" : "avx512_bf16");
    else
      lacks = "this CPU has no bf16 instructions (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo), where bf16 "
              "is emulated and slower than float32";
  }
  if (!has.empty()) return {Precision::kBFloat16, has};
  return {Precision::kFloat32, lacks};
}

void set_precision(Precision p) { g_precision = p; }
Precision current_precision() { return g_precision; }

AutocastScope::AutocastScope(const torch::Device& device) {
  if (current_precision() != Precision::kBFloat16) return;
  type_ = device.type();
  was_enabled_ = at::autocast::is_autocast_enabled(type_);
  was_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The cast weights are cached while any scope is open; the outermost one frees them.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, was_dtype_);
}

ModelOutput float32_output(ModelOutput out) {
  auto f32 = [](torch::Tensor& t) {
    if (t.defined() && torch::isFloatingType(t.scalar_type()) && t.scalar_type() != torch::kFloat32)
      t = t.to(torch::kFloat32);
  };
  f32(out.logits);
  for (auto& [name, t] : out.features) f32(t);
  return out;
}

}  // namespace kd
