// Mixed precision (kd/util/precision.h): --precision resolved from the flag and the hardware (bf16 only
// where the CPU has bf16 instructions or on a GPU; float32 with the reason elsewhere), AutocastScope
// running a model's forward pass in bf16 within bf16's rounding and leaving autocast as it found it, and the
// training recipe: forward under the scope, loss and backward in float32, gradients on float32 parameters.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include "kd/error.h"
#include "kd/util/precision.h"
#include "../expect_error.h"
#include "../models/tiny_bert.h"
#include "../tolerance.h"

namespace kd {
namespace {

// Restores float32 whatever a test did.
struct PrecisionReset {
  ~PrecisionReset() { set_precision(Precision::kFloat32); }
};

TEST(PrecisionTest, ResolvesFromTheFlagAndTheHardware) {
  const torch::Device cpu(torch::kCPU);
  EXPECT_EQ(resolve_precision("fp32", cpu).precision, Precision::kFloat32);
  const bool has = cpu_bf16_support().any();
  for (const char* flag : {"bf16", "auto"}) {
    const auto c = resolve_precision(flag, cpu);
    EXPECT_EQ(c.precision, has ? Precision::kBFloat16 : Precision::kFloat32) << flag;
    EXPECT_NE(c.reason.find(has ? "this CPU has" : "no bf16 instructions"), std::string::npos) << c.reason;
  }
  test::expect_error<ConfigError>([&] { resolve_precision("fp16", cpu); }, {"--precision fp16", "fp32, bf16, auto"});
}

TEST(PrecisionTest, AutocastScopeRunsTheForwardPassInBf16AndRestoresAutocast) {
  PrecisionReset reset;
  auto model = test::tiny_bert(2, 32, 4, 21);
  model->module().eval();
  const auto batch = test::tiny_bert_batch();
  torch::NoGradGuard no_grad;
  const auto ref = model->forward(batch).logits;  // (B, C) float32
  {
    AutocastScope scope(torch::kCPU);  // float32: nothing changes
    EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
    EXPECT_TRUE(torch::equal(model->forward(batch).logits, ref));
  }
  set_precision(Precision::kBFloat16);
  torch::Tensor got;
  {
    AutocastScope scope(torch::kCPU);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
    got = float32_output(model->forward(batch)).logits;
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  ASSERT_EQ(got.scalar_type(), torch::kFloat32);
  // bf16 rounds each matrix product's inputs to 8 significant bits (relative 2^-8) and accumulates in
  // float32, so each product is off by about 2^-8 of its output's size, with no √n growth; the errors of
  // the embedding, the two layers, the pooler and the head add up (depth 5).
  const double magnitude = ref.abs().max().item<double>() + ref.pow(2).mean().sqrt().item<double>();
  const double tol = test::rounding_tolerance(1.0 / 256, 1, 5, magnitude);
  const double diff = (got - ref).abs().max().item<double>();
  EXPECT_LE(diff, tol);
  EXPECT_GT(diff, 0.0) << "the forward pass did not run in bf16";
}

TEST(PrecisionTest, TrainingStepKeepsFloat32ParametersAndGradients) {
  PrecisionReset reset;
  auto model = test::tiny_bert(1, 16, 2, 22);
  model->module().train();
  const auto batch = test::tiny_bert_batch();
  auto step = [&] {
    model->module().zero_grad();
    torch::Tensor loss;
    {
      AutocastScope scope(torch::kCPU);
      loss = torch::nn::functional::cross_entropy(float32_output(model->forward(batch)).logits, batch.labels);
    }
    loss.backward();
    return loss;
  };
  torch::manual_seed(1);
  const auto loss32 = step();
  std::vector<torch::Tensor> grads32;
  for (const auto& p : model->module().parameters()) grads32.push_back(p.grad().clone());
  set_precision(Precision::kBFloat16);
  torch::manual_seed(1);  // the same dropout masks
  const auto loss16 = step();
  EXPECT_EQ(loss16.scalar_type(), torch::kFloat32);
  // Gradients compared as one vector: one parameter's own scale can be pure cancellation (a key bias's
  // gradient is 0 in exact arithmetic, since softmax ignores a shift), where any rounding looks huge.
  size_t i = 0;
  double diff2 = 0, ref2 = 0;
  for (const auto& p : model->module().parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kFloat32);
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
    diff2 += (p.grad() - grads32[i]).pow(2).sum().item<double>();
    ref2 += grads32[i].pow(2).sum().item<double>();
    ++i;
  }
  EXPECT_NEAR(loss16.item<double>(), loss32.item<double>(),
              test::relative_rounding_bound(1.0 / 256, 1, 5) * std::abs(loss32.item<double>()));
  // bf16's rounding (2^-8 of each product) through the forward and backward passes of the embedding, the
  // layer, the pooler and the head (depth 8).
  EXPECT_LE(std::sqrt(diff2 / ref2), test::relative_rounding_bound(1.0 / 256, 1, 8));
  EXPECT_GT(diff2, 0.0);
}

}  // namespace
}  // namespace kd
