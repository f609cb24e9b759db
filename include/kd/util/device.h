// Where tensors live: the `--device` value of the CLI (cpu, cuda, cuda:N) and the device a model's
// parameters are on, which the trainer, evaluation, knowledge sources and profiles follow.
#pragma once

#include <torch/torch.h>

#include <string>

namespace kd {

// "cpu", "cuda" or "cuda:N" (N a decimal index) as a torch::Device; anything else is a ConfigError
// naming --device. Syntax only: says nothing about whether the device exists.
torch::Device parse_device_name(const std::string& text);

// parse_device_name, then checks that the device can be used: a CUDA device with no CUDA device
// visible (or an index past the last one) is a ConfigError with a one-line message and a hint.
torch::Device parse_device(const std::string& text);

// The device of the module's first parameter (then buffer); the CPU for a module without tensors.
torch::Device module_device(const torch::nn::Module& module);

}  // namespace kd
