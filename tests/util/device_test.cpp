// kd::parse_device, behind the CLI's --device: the accepted spellings, the one-line ConfigError for the
// rest, and the check that a CUDA device is really there (on a machine without one, the error and its
// hint; on a GPU machine, the device). Each CUDA test needs one side: a GPU, or none; the other side
// reports it as skipped.
#include <gtest/gtest.h>

#include <ATen/Context.h>
#include <torch/cuda.h>

#include "expect_error.h"
#include "kd/error.h"
#include "kd/util/device.h"

namespace kd {
namespace {

TEST(DeviceTest, ParseDeviceNameAcceptsCpuCudaAndIndexedCuda) {
  EXPECT_EQ(parse_device_name("cpu"), torch::Device(torch::kCPU));
  EXPECT_EQ(parse_device_name("cuda"), torch::Device(torch::kCUDA));
  EXPECT_FALSE(parse_device_name("cuda").has_index());
  EXPECT_EQ(parse_device_name("cuda:0"), torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(parse_device_name("cuda:1"), torch::Device(torch::kCUDA, 1));
  EXPECT_EQ(parse_device_name("cuda:12"), torch::Device(torch::kCUDA, 12));
}

TEST(DeviceTest, ParseDeviceNameRejectsEverythingElseNamingTheFlag) {
  for (const char* bad : {"gpu", "cuda:x", "CUDA", "Cpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:1x", "cuda:1000",
                          "cuda:128", "cpu:0", "", " cuda", "cuda ", "mps", "cuda:0:1"}) {
    try {
      (void)parse_device_name(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("--device " + std::string(bad) + ": not a device", 0), 0u) << what;
      EXPECT_NE(what.find("use cpu, cuda or cuda:N"), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_EQ(e.exit_code(), 2);
    }
    EXPECT_THROW((void)parse_device(bad), ConfigError) << bad;
  }
}

TEST(DeviceTest, ParseDeviceGivesTheCpuAlways) { EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU)); }

// Needs a GPU: reported as skipped, not as passed, where none is visible.
TEST(DeviceTest, ParseDeviceGivesCudaWhereADeviceIsVisible) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  EXPECT_EQ(parse_device("cuda"), torch::Device(torch::kCUDA));
  EXPECT_EQ(parse_device("cuda:0"), torch::Device(torch::kCUDA, 0));
  const auto past = "cuda:" + std::to_string(torch::cuda::device_count());
  test::expect_error<ConfigError>([&] { (void)parse_device(past); }, {"--device " + past, "CUDA device(s) visible"});
}

// No GPU: the CPU is never substituted silently; the error says why and what to do, on one line. Where a
// GPU is visible there is no refusal to check.
TEST(DeviceTest, ParseDeviceRefusesCudaWhereNoDeviceIsVisible) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible: there is no refusal to check";
  for (const char* cuda : {"cuda", "cuda:0", "cuda:1"}) {
    try {
      (void)parse_device(cuda);
      ADD_FAILURE() << cuda << " was accepted without a CUDA device";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what, "--device " + std::string(cuda) +
                          ": no CUDA device is visible (LibTorch has CUDA support: " +
                          (at::Context::hasCUDART() ? "yes" : "no") + ") (hint: use --device cpu)");
    }
  }
}

TEST(DeviceTest, ModuleDeviceIsWhereTheParametersAre) {
  torch::nn::Linear linear(3, 2);
  EXPECT_EQ(module_device(*linear), torch::Device(torch::kCPU));
  torch::nn::Module empty;
  EXPECT_EQ(module_device(empty), torch::Device(torch::kCPU));
}

TEST(DeviceTest, ModuleDeviceFollowsTheParametersToCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  torch::nn::Linear linear(3, 2);
  linear->to(torch::kCUDA);
  EXPECT_TRUE(module_device(*linear).is_cuda());
}

}  // namespace
}  // namespace kd
