#include <gtest/gtest.h>

#include "kd/train/optimizer.h"

namespace kd {
namespace {

TEST(OptimizerTest, LinearScheduleWarmsUpThenDecaysToZero) {
  LinearSchedule s(1e-3, 10, 110);
  EXPECT_GT(s.lr_at(0), 0.0);
  EXPECT_LT(s.lr_at(0), s.lr_at(5));
  EXPECT_NEAR(s.lr_at(10), 1e-3, 1e-15);
  EXPECT_NEAR(s.lr_at(60), 0.5e-3, 1e-12);
  EXPECT_NEAR(s.lr_at(110), 0.0, 1e-15);
  EXPECT_NEAR(s.lr_at(500), 0.0, 1e-15);
}

TEST(OptimizerTest, NoWeightDecayOnBiasAndNorms) {
  torch::nn::Sequential net(torch::nn::Linear(3, 4), torch::nn::LayerNorm(torch::nn::LayerNormOptions({4})));
  auto opt = make_adamw(*net, OptimizerOptions{});
  ASSERT_EQ(opt->param_groups().size(), 2u);
  EXPECT_EQ(opt->param_groups()[0].params().size(), 1u);  // linear weight
  EXPECT_EQ(opt->param_groups()[1].params().size(), 3u);  // linear bias, norm weight and bias
  auto& decayed = static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[0].options());
  auto& plain = static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[1].options());
  EXPECT_DOUBLE_EQ(decayed.weight_decay(), 0.01);
  EXPECT_DOUBLE_EQ(plain.weight_decay(), 0.0);
  LinearSchedule(2e-3, 0, 10).apply(*opt, 0);
  EXPECT_DOUBLE_EQ(decayed.lr(), 2e-3);
}

}  // namespace
}  // namespace kd
