// Schedule: the values of constant, warm-up, linear and cosine schedules over training; the bounds
// that make a schedule an error (naming its key) wherever on the way it leaves them; DistillLoss and
// FeatureObjective following their schedules; the trainer reporting its progress before each step.
#include "kd/losses/schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/losses/distill_loss.h"
#include "kd/losses/feature_terms.h"
#include "kd/losses/soft_label_losses.h"
#include "../expect_error.h"
#include "../models/tiny_bert.h"

namespace kd {
namespace {

const ScheduleBounds kNonNegative{0, 1e300, false, "a weight must be >= 0"};

Schedule read(const std::string& yaml, const ScheduleBounds& bounds = kNonNegative) {
  Config c = Config::from_string("term:\n  " + yaml + "\n", "exp.yaml");
  auto section = c.root().child("term");
  return Schedule::from(section, "weight", 1.0, bounds);
}

TEST(ScheduleTest, ConstantWarmUpLinearAndCosine) {
  const Schedule fixed = read("weight: 0.5");
  EXPECT_TRUE(fixed.is_constant());
  for (double p : {0.0, 0.3, 1.0}) EXPECT_DOUBLE_EQ(fixed.at(p), 0.5);
  EXPECT_DOUBLE_EQ(read("other: 1").at(0.7), 1.0) << "absent: the fallback";

  const Schedule warm = read("weight: {start: 2, warmup: 0.25}");  // 0 → 2 over the first quarter, then 2
  EXPECT_FALSE(warm.is_constant());
  EXPECT_DOUBLE_EQ(warm.at(0), 0);
  EXPECT_DOUBLE_EQ(warm.at(0.125), 1);
  EXPECT_DOUBLE_EQ(warm.at(0.25), 2);
  EXPECT_DOUBLE_EQ(warm.at(0.9), 2);

  const Schedule decay = read("weight: {start: 4, end: 1}");  // linear over all of training
  EXPECT_DOUBLE_EQ(decay.at(0), 4);
  EXPECT_DOUBLE_EQ(decay.at(0.5), 2.5);
  EXPECT_DOUBLE_EQ(decay.at(1), 1);
  EXPECT_DOUBLE_EQ(decay.at(2), 1) << "clamped";

  const Schedule both = read("weight: {start: 1, end: 0, warmup: 0.2, shape: cosine}");
  EXPECT_DOUBLE_EQ(both.at(0.1), 0.5);
  EXPECT_DOUBLE_EQ(both.at(0.2), 1);
  // Half way through the decay (progress 0.6) a half-period cosine is half way too; a quarter of the
  // way it has moved (1 − cos(π/4))/2 of it, less than the linear quarter.
  EXPECT_NEAR(both.at(0.6), 0.5, 1e-12);
  EXPECT_NEAR(both.at(0.4), 1 - (1 - std::cos(std::acos(-1.0) / 4)) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(both.at(1), 0);
  EXPECT_DOUBLE_EQ(both.min(), 0);
  EXPECT_DOUBLE_EQ(both.max(), 1);
  EXPECT_EQ(both.describe(), "0→1 over 20%, then 1→0 (cosine)");
  EXPECT_EQ(both.to_json()["shape"], "cosine");
  EXPECT_TRUE(fixed.to_json().is_number()) << "a constant stays a number in reports";
}

TEST(ScheduleTest, LeavingTheBoundsAnywhereIsAnErrorNamingTheKey) {
  using test::expect_error;
  expect_error<ConfigError>([] { read("weight: -1"); }, {"term.weight", "-1", ">= 0"});
  expect_error<ConfigError>([] { read("weight: {start: 1, end: -0.5}"); }, {"term.weight", "-0.5", "during training"});
  expect_error<ConfigError>([] { read("weight: {start: 1, warmup: 1}"); }, {"term.weight.warmup", "[0, 1)"});
  expect_error<ConfigError>([] { read("weight: {start: 1, shape: steps}"); }, {"term.weight.shape", "linear or cosine"});
  expect_error<ConfigError>([] { read("weight: {end: 1}"); }, {"term.weight.start"});
  expect_error<ConfigError>([] { read("weight: {start: .inf}"); }, {"term.weight"});
  // A warm-up starts at 0: fine for a weight, not for a temperature.
  const ScheduleBounds positive{0, 1e300, true, "a temperature must be > 0"};
  EXPECT_NO_THROW(read("weight: {start: 1, warmup: 0.1}"));
  expect_error<ConfigError>([&] { read("weight: {start: 4, warmup: 0.1}", positive); }, {"term.weight", "reaches 0", "> 0"});
}

TEST(ScheduleTest, DistillLossFollowsItsAlphaAndTemperature) {
  Config c = Config::from_string("distill: {alpha: {start: 0, end: 1}, temperature: {start: 4, end: 1}}\n", "exp.yaml");
  auto section = c.root().child("distill");
  const DistillLoss loss(DistillLossOptions::from(section));
  EXPECT_TRUE(loss.needs_teacher());
  torch::manual_seed(3);
  const auto s = torch::randn({5, 3}), t = torch::randn({5, 3});
  const auto labels = torch::tensor({0, 2, 1, 1, 0}, torch::kInt64);
  const auto ce = torch::nn::functional::cross_entropy(s, labels).item<double>();
  // Start: α = 0, only the labels. End: α = 1 at T = 1, only the soft term. Middle: α = ½ at T = 2.5.
  EXPECT_NEAR(loss(s, t, labels, 0).total.item<double>(), ce, 1e-6);
  EXPECT_NEAR(loss(s, t, labels, 1).total.item<double>(), kl_div_loss(s, t, 1.0).mean().item<double>(), 1e-6);
  EXPECT_NEAR(loss(s, t, labels, 0.5).total.item<double>(), 0.5 * kl_div_loss(s, t, 2.5).mean().item<double>() + 0.5 * ce,
              1e-6);

  Config bad = Config::from_string("distill: {temperature: {start: 2, end: 0}}\n", "exp.yaml");
  auto b = bad.root().child("distill");
  test::expect_error<ConfigError>([&] { DistillLossOptions::from(b); }, {"distill.temperature", "reaches 0"});
  Config never = Config::from_string("distill: {alpha: {start: 0, end: 0, warmup: 0.5}}\n", "exp.yaml");
  auto n = never.root().child("distill");
  EXPECT_FALSE(DistillLoss(DistillLossOptions::from(n)).needs_teacher()) << "α is 0 throughout";
}

TEST(ScheduleTest, FeatureWeightsFollowTheirSchedule) {
  auto teacher = test::tiny_bert(4, 16, 4, 1);
  auto student = test::tiny_bert(2, 16, 4, 2);
  Config c = Config::from_string(
      "features: [{type: hidden_mse, layers: skip, weight: {start: 2, warmup: 0.5}}, {type: attention_mse, layers: skip}]",
      "f.yaml");
  FeatureObjective scheduled(c.root().child_list("features"), FeatureTermContext{student->encoder_shape(), teacher->encoder_shape()});
  Config h = Config::from_string("features: [{type: hidden_mse, layers: skip}]", "h.yaml");
  FeatureObjective hidden(h.root().child_list("features"), FeatureTermContext{student->encoder_shape(), teacher->encoder_shape()});
  Config a = Config::from_string("features: [{type: attention_mse, layers: skip}]", "a.yaml");
  FeatureObjective attention(a.root().child_list("features"), FeatureTermContext{student->encoder_shape(), teacher->encoder_shape()});
  EXPECT_EQ(scheduled->describe(), "hidden_mse×(0→2 over 50%) + attention_mse×1");

  const Batch batch = test::tiny_bert_batch();
  torch::NoGradGuard no_grad;
  const auto so = student->forward(batch, scheduled->needs()), to = teacher->forward(batch, scheduled->needs());
  const double h1 = hidden->forward(so, to, batch.attention_mask).item<double>();
  const double a1 = attention->forward(so, to, batch.attention_mask).item<double>();
  ASSERT_GT(h1, 0);
  const double tol = 1e-5 * (h1 + a1);
  EXPECT_NEAR(scheduled->forward(so, to, batch.attention_mask, 0).item<double>(), a1, tol) << "weight 0 at the start";
  EXPECT_NEAR(scheduled->forward(so, to, batch.attention_mask, 0.25).item<double>(), h1 + a1, tol);
  EXPECT_NEAR(scheduled->forward(so, to, batch.attention_mask, 0.9).item<double>(), 2 * h1 + a1, tol);
}

}  // namespace
}  // namespace kd
