#include "kd/util/device.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include <cctype>

#include "kd/error.h"

namespace kd {

torch::Device parse_device_name(const std::string& text) {
  if (text == "cpu") return torch::Device(torch::kCPU);
  if (text == "cuda") return torch::Device(torch::kCUDA);
  const std::string prefix = "cuda:";
  if (text.size() > prefix.size() && text.size() <= prefix.size() + 3 && text.compare(0, prefix.size(), prefix) == 0) {
    bool digits = true;
    for (size_t i = prefix.size(); i < text.size(); ++i) digits = digits && std::isdigit(static_cast<unsigned char>(text[i]));
    const int index = digits ? std::stoi(text.substr(prefix.size())) : -1;
    if (digits && index <= 127) return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw ConfigError(located("--device " + text, "not a device", "use cpu, cuda or cuda:N"));
}

torch::Device parse_device(const std::string& text) {
  const torch::Device device = parse_device_name(text);
  if (!device.is_cuda()) return device;
  const std::string support = std::string("LibTorch has CUDA support: ") + (at::Context::hasCUDART() ? "yes" : "no");
  if (!torch::cuda::is_available())
    throw ConfigError(located("--device " + text, "no CUDA device is visible (" + support + ")", "use --device cpu"));
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (device.has_index() && device.index() >= count)
    throw ConfigError(located("--device " + text, std::to_string(count) + " CUDA device(s) visible, numbered from 0",
                              "use --device cuda:0"));
  return device;
}

torch::Device module_device(const torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  for (const auto& b : module.buffers()) return b.device();
  return torch::Device(torch::kCPU);
}

}  // namespace kd
