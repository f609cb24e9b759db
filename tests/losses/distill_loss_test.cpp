// DistillLoss: config validation, the per-row combination of soft and hard terms, gradients by finite
// differences (unit), and totals and gradients against a PyTorch reference (parity).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/io/safetensors.h"
#include "kd/losses/distill_loss.h"
#include "kd/losses/soft_label_losses.h"
#include "../test_paths.h"
#include "../tolerance.h"
#include "grad_check.h"

namespace kd {
namespace {

DistillLossOptions options_from(const std::string& yaml) {
  Config c = Config::from_string(yaml, "exp.yaml");
  auto section = c.root().child("distill");
  return DistillLossOptions::from(section);
}

DistillLoss make_loss(const std::string& soft, double T, double alpha) {
  DistillLossOptions o;
  o.soft = soft;
  o.temperature = T;
  o.alpha = alpha;
  return DistillLoss(o);
}

TEST(DistillLossTest, OptionsDefaultsAreRecorded) {
  Config c = Config::from_string("distill: {}\n", "exp.yaml");
  auto section = c.root().child("distill");
  const auto o = DistillLossOptions::from(section);
  EXPECT_EQ(o.soft, "kl");
  EXPECT_DOUBLE_EQ(o.temperature.at(0), 2.0);
  EXPECT_DOUBLE_EQ(o.alpha.at(0), 0.5);
  c.check_all_used();
  const std::string resolved = c.resolved_yaml();
  for (const char* key : {"soft_loss: kl", "temperature: 2", "alpha: 0.5"})
    EXPECT_NE(resolved.find(key), std::string::npos) << resolved;
}

TEST(DistillLossTest, OptionsReadValues) {
  const auto o = options_from("distill:\n  soft_loss: mse\n  temperature: 4.5\n  alpha: 1\n");
  EXPECT_EQ(o.soft, "mse");
  EXPECT_DOUBLE_EQ(o.temperature.at(0), 4.5);
  EXPECT_DOUBLE_EQ(o.alpha.at(0), 1.0);
  EXPECT_DOUBLE_EQ(options_from("distill: {alpha: 0}\n").alpha.at(0), 0.0);
}

TEST(DistillLossTest, ConfigErrorsNameTheKeyAndLine) {
  struct Bad {
    std::string yaml, key, also;
  };
  const std::vector<Bad> cases = {
      {"  temperature: 0\n", "distill.temperature", "> 0"},
      {"  temperature: -1\n", "distill.temperature", "> 0"},
      {"  temperature: .nan\n", "distill.temperature", "finite"},
      {"  temperature: .inf\n", "distill.temperature", "finite"},
      {"  alpha: 1.5\n", "distill.alpha", "[0, 1]"},
      {"  alpha: -0.1\n", "distill.alpha", "[0, 1]"},
      {"  soft_loss: foo\n", "distill.soft_loss", "kl, mse, soft_ce"},
      {"  temperature: warm\n", "distill.temperature", "expected"},
  };
  for (const auto& b : cases) {
    try {
      options_from("distill:\n" + b.yaml);
      ADD_FAILURE() << "no ConfigError for " << b.yaml;
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("exp.yaml: key '" + b.key + "' (line 2"), std::string::npos) << m;
      EXPECT_NE(m.find(b.also), std::string::npos) << m;
    }
  }
}

TEST(DistillLossTest, ConstructorChecksOptionsBuiltInCode) {
  EXPECT_THROW(make_loss("foo", 2.0, 0.5), ConfigError);
  EXPECT_THROW(make_loss("kl", 0.0, 0.5), ConfigError);
  EXPECT_THROW(make_loss("kl", 2.0, NAN), ConfigError);
  EXPECT_TRUE(make_loss("kl", 2.0, 0.5).needs_teacher());
  EXPECT_FALSE(make_loss("kl", 2.0, 0.0).needs_teacher());
}

TEST(DistillLossTest, RowsCombineAsDocumented) {
  torch::manual_seed(11);
  const auto s = torch::randn({6, 4}, torch::kFloat64), t = torch::randn({6, 4}, torch::kFloat64) * 3;
  const auto labels = torch::tensor({2, -1, 0, 3, -1, 1}, torch::kInt64);
  const double T = 3.0, a = 0.3;
  const auto parts = make_loss("kl", T, a)(s, t, labels);
  const auto soft = kl_div_loss(s, t, T);
  double want = 0, hard = 0;
  for (int64_t r = 0; r < 6; ++r) {
    const int64_t y = labels[r].item<int64_t>();
    const double ce = y < 0 ? 0 : -torch::log_softmax(s[r], -1)[y].item<double>();
    hard += ce / 4;
    want += (y < 0 ? soft[r].item<double>() : a * soft[r].item<double>() + (1 - a) * ce) / 6;
  }
  EXPECT_NEAR(parts.total.item<double>(), want, 1e-12);
  EXPECT_NEAR(parts.soft.item<double>(), soft.mean().item<double>(), 1e-12);
  EXPECT_NEAR(parts.hard.item<double>(), hard, 1e-12);
  // α = 1 is the soft term alone; CE is still reported.
  const auto pure = make_loss("kl", T, 1.0)(s, t, labels);
  EXPECT_NEAR(pure.total.item<double>(), soft.mean().item<double>(), 1e-12);
  EXPECT_NEAR(pure.hard.item<double>(), hard, 1e-12);
}

TEST(DistillLossTest, AlphaZeroIsCrossEntropyWithoutTeacher) {
  torch::manual_seed(12);
  const auto s = torch::randn({5, 3});
  const auto labels = torch::tensor({1, -1, 0, -1, 2}, torch::kInt64);
  const auto parts = make_loss("kl", 2.0, 0.0)(s, torch::Tensor(), labels);  // teacher undefined
  const auto want = torch::nn::functional::cross_entropy(
      s, labels, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));
  EXPECT_NEAR(parts.total.item<double>(), want.item<double>(), 1e-6);
  EXPECT_NEAR(parts.hard.item<double>(), want.item<double>(), 1e-6);
  EXPECT_EQ(parts.soft.item<double>(), 0.0);  // no teacher term
}

TEST(DistillLossTest, NoSignalGivesZeroWithGradient) {
  auto s = torch::randn({3, 4}).requires_grad_(true);
  const auto none = torch::full({3}, -1, torch::kInt64);
  const auto parts = make_loss("kl", 2.0, 0.0)(s, torch::Tensor(), none);
  EXPECT_EQ(parts.total.item<double>(), 0.0);
  EXPECT_EQ(parts.hard.item<double>(), 0.0);
  ASSERT_TRUE(parts.total.requires_grad());
  parts.total.backward();
  EXPECT_EQ(s.grad().abs().max().item<double>(), 0.0);
  // An empty batch, with a teacher.
  auto e = torch::zeros({0, 4}).requires_grad_(true);
  const auto empty = make_loss("kl", 2.0, 0.5)(e, torch::zeros({0, 4}), torch::zeros({0}, torch::kInt64));
  EXPECT_EQ(empty.total.item<double>(), 0.0);
  empty.total.backward();
}

TEST(DistillLossTest, BadInputsAreDataErrors) {
  const auto loss = make_loss("kl", 2.0, 0.5);
  const auto s = torch::randn({3, 4});
  EXPECT_THROW(loss(s, torch::Tensor(), torch::tensor({0, 1, 2}, torch::kInt64)), DataError);  // teacher needed
  EXPECT_THROW(loss(s, torch::randn({3, 5}), torch::tensor({0, 1, 2}, torch::kInt64)), DataError);
  EXPECT_THROW(loss(s, s, torch::tensor({0, 4, 2}, torch::kInt64)), DataError);   // label == C
  EXPECT_THROW(loss(s, s, torch::tensor({0, -2, 2}, torch::kInt64)), DataError);  // only −1 means none
  EXPECT_THROW(loss(s, s, torch::tensor({0, 1}, torch::kInt64)), DataError);
  EXPECT_THROW(loss(s, s, torch::tensor({0, 1, 2}, torch::kInt32)), DataError);
}

TEST(DistillLossTest, FiniteDifferenceGradients) {
  torch::manual_seed(13);
  const auto s = torch::randn({5, 4}, torch::kFloat64) * 2, t = torch::randn({5, 4}, torch::kFloat64) * 3;
  const auto labels = torch::tensor({3, -1, 0, 1, -1}, torch::kInt64);
  for (const std::string soft : {"kl", "soft_ce", "mse"}) {
    for (double a : {0.0, 0.3, 1.0}) {
      const auto loss = make_loss(soft, 2.5, a);
      const double err = test::fd_gradient_error([&](const torch::Tensor& x) { return loss(x, t, labels).total; }, s);
      EXPECT_LT(err, 1e-6) << soft << " alpha=" << a;
    }
  }
}

// ---- parity with a PyTorch reference (golden files from tests/python/golden_losses.py) ----

// The rounding bound for the float32 loss and gradient (tests/tolerance.h), against a float64 reference.
// Reductions over the classes (log-softmax, the sum over classes) and the rows (the mean): depth 3, n the
// longer of the two. Magnitude: the size of the terms added up: T·max|logit| for the KL and soft-CE
// terms (T² times log-probabilities of logits / T), max|logit| for the cross-entropy, (s − t)² for the MSE.
double distill_tolerance(const std::string& soft, const torch::Tensor& s, const torch::Tensor& t, double T) {
  const int64_t classes = s.size(-1), rows = s.numel() / classes;
  const double x = std::max(s.abs().max().item<double>(), t.abs().max().item<double>());
  const double d = (s - t).abs().max().item<double>();
  const double terms = soft == "mse" ? std::max(d * d, x) : std::max(T, 1.0) * x;
  return test::fp32_tolerance(std::max(classes, rows), 3, std::max(1.0, terms));
}

TEST(DistillLossParityTest, TotalsAndGradientsMatchPyTorch) {
  double worst32 = 0, worst64 = 0;  // float32: largest diff / tolerance; float64: largest scaled diff
  for (const std::string c : {"kl_a0", "kl_a0_3", "kl_a1", "soft_ce_a0_3", "mse_a0_3"}) {
    const std::string path = test::golden("losses/distill_" + c + ".safetensors");
    ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run make_golden.py (golden_losses) first";
    SafeTensorsFile f(path);
    const auto& meta = f.metadata();
    const auto loss = make_loss(meta.at("soft"), std::stod(meta.at("temperature")), std::stod(meta.at("alpha")));
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      const bool fp32 = dtype == torch::kFloat32;
      SCOPED_TRACE(c + (fp32 ? " fp32" : " fp64"));
      // float32: absolute differences within the derived bound; float64: scaled differences within 1e-10.
      const double tol = fp32 ? distill_tolerance(meta.at("soft"), f.load("student", torch::kFloat64),
                                                  f.load("teacher", torch::kFloat64), std::stod(meta.at("temperature")))
                              : 1e-10;
      auto s = f.load("student", dtype).requires_grad_(true);
      // α = 0 must not touch the teacher: pass none.
      const auto t = loss.needs_teacher() ? f.load("teacher", dtype) : torch::Tensor();
      const auto parts = loss(s, t, f.load("labels"));
      parts.total.backward();
      const auto scaled = [fp32](double got, double want) {
        return std::abs(got - want) / (fp32 ? 1.0 : std::max(1.0, std::abs(want)));
      };
      const double d_total = scaled(parts.total.item<double>(), f.load("total", torch::kFloat64).item<double>());
      const double d_soft = scaled(parts.soft.item<double>(), f.load("soft", torch::kFloat64).item<double>());
      const double d_hard = scaled(parts.hard.item<double>(), f.load("hard", torch::kFloat64).item<double>());
      const double d_grad = (s.grad().to(torch::kFloat64) - f.load("grad", torch::kFloat64)).abs().max().item<double>();
      EXPECT_LE(d_total, tol);
      EXPECT_LE(d_soft, tol);
      EXPECT_LE(d_hard, tol);
      EXPECT_LE(d_grad, tol);
      double& worst = fp32 ? worst32 : worst64;
      worst = std::max({worst, d_total / (fp32 ? tol : 1.0), d_soft / (fp32 ? tol : 1.0), d_hard / (fp32 ? tol : 1.0),
                        d_grad / (fp32 ? tol : 1.0)});
    }
  }
  std::printf("[ losses   ] DistillLoss vs PyTorch (float64 reference): fp32 largest diff / tolerance %.3g, "
              "fp64 max scaled diff %.3g\n", worst32, worst64);
}

}  // namespace
}  // namespace kd
