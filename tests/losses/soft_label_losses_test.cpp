// Soft-label losses: properties and gradients (unit), and values and gradients against PyTorch's own
// kl_div / cross_entropy / mse_loss on golden inputs (parity).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/safetensors.h"
#include "kd/losses/distill_loss.h"
#include "kd/losses/soft_label_losses.h"
#include "../test_paths.h"
#include "../tolerance.h"
#include "grad_check.h"

namespace kd {
namespace {

const double kInf = std::numeric_limits<double>::infinity();
const std::vector<std::string> kLosses = {"kl", "soft_ce", "mse"};

torch::Tensor randn(std::vector<int64_t> shape, double scale = 2.0) {
  return torch::randn(shape, torch::kFloat64) * scale;
}

// Keeps the k largest teacher logits per row and sets the rest to −inf (a cached top-k).
torch::Tensor top_k(const torch::Tensor& t, int64_t k) {
  const auto idx = std::get<1>(t.topk(k, -1));
  return torch::full_like(t, -kInf).scatter(-1, idx, t.gather(-1, idx));
}

double max_abs(const torch::Tensor& t) { return t.numel() ? t.abs().max().item<double>() : 0.0; }

TEST(SoftLabelLossTest, RegistryHoldsTheThreeLosses) {
  EXPECT_EQ(soft_loss_registry().known(), "kl, mse, soft_ce");
  EXPECT_THROW(soft_loss_registry().get("l2", "here"), ConfigError);
}

TEST(SoftLabelLossTest, ShapesAndArgumentErrors) {
  torch::manual_seed(1);
  const auto s = randn({2, 3, 5}), t = randn({2, 3, 5});
  for (const auto& name : kLosses) {
    const auto& fn = soft_loss_registry().get(name, "test");
    EXPECT_EQ(fn(s, t, 2.0).sizes(), torch::IntArrayRef({2, 3})) << name;
    EXPECT_EQ(fn(randn({5}), randn({5}), 2.0).dim(), 0) << name;
    EXPECT_THROW(fn(s, randn({2, 3, 4}), 2.0), DataError) << name;
    EXPECT_THROW(fn(s, torch::Tensor(), 2.0), DataError) << name;
  }
  EXPECT_THROW(kl_div_loss(s, t, 0.0), ConfigError);
  EXPECT_THROW(soft_cross_entropy_loss(s, t, -1.0), ConfigError);
  EXPECT_NO_THROW(logit_mse_loss(s, t, 0.0));  // temperature unused
}

TEST(SoftLabelLossTest, FiniteDifferenceGradients) {
  torch::manual_seed(2);
  const auto s = randn({2, 3, 6});
  const auto w = torch::rand({2, 3}, torch::kFloat64);  // distinct weights: each position's gradient counts
  const auto t_full = randn({2, 3, 6}, 3.0);
  for (const auto& t : {t_full, top_k(t_full, 2)}) {
    for (const auto& name : kLosses) {
      for (double T : {1.0, 2.5}) {
        const auto& fn = soft_loss_registry().get(name, "test");
        const double err = test::fd_gradient_error([&](const torch::Tensor& x) { return (fn(x, t, T) * w).sum(); }, s);
        EXPECT_LT(err, 1e-6) << name << " T=" << T << (t.isinf().any().item<bool>() ? " top-k" : "");
      }
    }
  }
  const auto mask = torch::tensor({{1, 1, 0}, {1, 0, 0}}, torch::kFloat64);
  EXPECT_LT(test::fd_gradient_error([&](const torch::Tensor& x) { return masked_mean(x, mask); }, randn({2, 3})), 1e-6);
}

TEST(SoftLabelLossTest, KlIsNonNegativeAndZeroOnlyAtTheTeacher) {
  torch::manual_seed(3);
  for (double scale : {0.01, 1.0, 10.0, 50.0}) {
    for (double T : {0.5, 1.0, 4.0}) {
      const auto s = randn({64, 9}, scale), t = randn({64, 9}, scale);
      EXPECT_GE(kl_div_loss(s, t, T).min().item<double>(), -1e-12) << scale << " " << T;
      EXPECT_GE(kl_div_loss(s.to(torch::kFloat32), t.to(torch::kFloat32), T).min().item<float>(), -1e-5f);
      // Same logits: exactly zero (same log_softmax on both sides), also with a top-k teacher.
      EXPECT_EQ(max_abs(kl_div_loss(t, t, T)), 0.0);
      EXPECT_EQ(max_abs(kl_div_loss(top_k(t, 3), top_k(t, 3), T)), 0.0);
      // ... and the gradient vanishes there.
      auto x = t.clone().requires_grad_(true);
      kl_div_loss(x, t, T).sum().backward();
      EXPECT_LT(max_abs(x.grad()), 1e-12);
    }
  }
}

TEST(SoftLabelLossTest, SoftCrossEntropyIsKlPlusTeacherEntropy) {
  torch::manual_seed(4);
  for (const bool topk : {false, true}) {
    for (double T : {1.0, 2.0, 4.5}) {
      const auto s = randn({16, 8}), t = topk ? top_k(randn({16, 8}, 3.0), 3) : randn({16, 8}, 3.0);
      const auto p = torch::softmax(t / T, -1);
      const auto p_log_p = torch::where(p > 0, p * p.log(), torch::zeros_like(p));
      const auto entropy = -p_log_p.sum(-1);
      const auto diff = soft_cross_entropy_loss(s, t, T) - kl_div_loss(s, t, T) - T * T * entropy;
      EXPECT_LT(max_abs(diff), 1e-10) << "T=" << T << " topk=" << topk;
      // Same gradient with respect to the student.
      auto a = s.clone().requires_grad_(true), b = s.clone().requires_grad_(true);
      soft_cross_entropy_loss(a, t, T).sum().backward();
      kl_div_loss(b, t, T).sum().backward();
      EXPECT_LT(max_abs(a.grad() - b.grad()), 1e-12);
    }
  }
}

TEST(SoftLabelLossTest, KlIgnoresAShiftOfTheStudentLogits) {
  torch::manual_seed(5);
  const auto s = randn({10, 7}), t = randn({10, 7});
  const auto shift = randn({10, 1}, 20.0);
  EXPECT_LT(max_abs(kl_div_loss(s + shift, t, 2.0) - kl_div_loss(s, t, 2.0)), 1e-10);
}

TEST(SoftLabelLossTest, TopKTeacherGivesFiniteLossesAndGradients) {
  torch::manual_seed(6);
  const double T = 2.0;
  const auto s = randn({6, 10}), t = top_k(randn({6, 10}, 3.0), 4);
  const auto keep = t.isfinite();
  for (const auto& name : kLosses) {
    auto x = s.clone().requires_grad_(true);
    const auto per = soft_loss_registry().get(name, "test")(x, t, T);
    per.sum().backward();
    EXPECT_TRUE(per.isfinite().all().item<bool>()) << name;
    EXPECT_TRUE(x.grad().isfinite().all().item<bool>()) << name;
  }
  // KL over the full vocabulary equals the sum over the teacher's k classes only.
  const auto log_ps = torch::log_softmax(s / T, -1), log_pt = torch::log_softmax(t / T, -1);
  const auto by_hand = torch::where(keep, log_pt.exp() * (log_pt - log_ps), torch::zeros_like(s)).sum(-1) * T * T;
  EXPECT_LT(max_abs(kl_div_loss(s, t, T) - by_hand), 1e-12);
  // MSE is the mean over the k classes the teacher gave.
  const auto mse = logit_mse_loss(s, t, T);
  for (int64_t r = 0; r < s.size(0); ++r) {
    const auto k = keep[r];
    EXPECT_NEAR(mse[r].item<double>(), (s[r].index({k}) - t[r].index({k})).square().mean().item<double>(), 1e-12);
  }
  // A student −inf outside the teacher's support is harmless (0 · inf must not become NaN).
  auto x = s.masked_fill(~keep, -kInf).requires_grad_(true);
  const auto kl = kl_div_loss(x, t, T);
  kl.sum().backward();
  EXPECT_TRUE(kl.isfinite().all().item<bool>());
  EXPECT_FALSE(x.grad().isnan().any().item<bool>());
}

TEST(SoftLabelLossTest, MseIgnoresTemperatureAndEmptyTeacherRows) {
  torch::manual_seed(7);
  const auto s = randn({4, 5}), t = randn({4, 5});
  EXPECT_EQ(max_abs(logit_mse_loss(s, t, 1.0) - logit_mse_loss(s, t, 7.0)), 0.0);
  EXPECT_LT(max_abs(logit_mse_loss(s, t, 1.0) - (s - t).square().mean(-1)), 1e-12);
  auto x = s.clone().requires_grad_(true);
  const auto none = logit_mse_loss(x, torch::full_like(t, -kInf), 1.0);  // no class cached at all
  none.sum().backward();
  EXPECT_EQ(max_abs(none), 0.0);
  EXPECT_EQ(max_abs(x.grad()), 0.0);
}

TEST(SoftLabelLossTest, MaskedMeanDropsPaddingAndIsZeroWhenEmpty) {
  auto per = torch::tensor({{1.0, 2.0, std::nan("")}, {4.0, kInf, 0.5}}, torch::kFloat64).requires_grad_(true);
  const auto mask = torch::tensor({{1, 1, 0}, {1, 0, 1}}, torch::kInt64);  // integer masks work too
  const auto m = masked_mean(per, mask);
  EXPECT_DOUBLE_EQ(m.item<double>(), 7.5 / 4);
  m.backward();
  EXPECT_TRUE(per.grad().equal(mask.to(torch::kFloat64) / 4));

  auto p2 = torch::randn({3, 2}, torch::kFloat64).requires_grad_(true);
  const auto empty = masked_mean(p2, torch::zeros({3, 2}));
  EXPECT_EQ(empty.item<double>(), 0.0);
  ASSERT_TRUE(empty.requires_grad());
  empty.backward();
  EXPECT_EQ(max_abs(p2.grad()), 0.0);
  EXPECT_EQ(masked_mean(torch::zeros({0}), torch::zeros({0})).item<double>(), 0.0);
  EXPECT_THROW(masked_mean(per, torch::ones({2})), DataError);
}

// ---- parity with PyTorch (golden files from tests/python/golden_losses.py) ----

std::string golden_file(const std::string& name) {
  const std::string p = test::golden("losses/" + name + ".safetensors");
  if (!std::filesystem::exists(p)) throw std::runtime_error(p + " missing: run make_golden.py (golden_losses) first");
  return p;
}

// float64 differences are scaled by max(1, |reference|): the ±50-logit cases reach losses near 100. The
// float32 ones are absolute, within loss_tolerance (which takes the size of the terms into account).
double scaled_diff(const torch::Tensor& got, const torch::Tensor& want) {
  const auto w = want.to(torch::kFloat64);
  return ((got.to(torch::kFloat64) - w).abs() / w.abs().clamp_min(1)).max().item<double>();
}

double abs_diff(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs().max().item<double>();
}

// Largest finite |x|.
double finite_max_abs(const torch::Tensor& x) {
  const auto a = x.to(torch::kFloat64).abs();
  const auto finite = a.masked_select(a.isfinite());
  return finite.numel() ? finite.max().item<double>() : 0.0;
}

// The rounding bound for float32 values and gradients of loss `name` on logits s, t (tests/tolerance.h),
// against a float64 reference (so only our side rounds in float32; the bound counts two sides anyway).
// Reductions: the classes (log-softmax, the sum over classes) and the positions (the mean): depth 3, n the
// longer of the two. Magnitude: the size of the terms added up. KL and soft CE add T²·p·(log p − log q)
// with log-probabilities of logits / T, each up to about max|logit| / T, so terms up to T·max|logit|; the
// MSE adds (s − t)².
double loss_tolerance(const std::string& name, const torch::Tensor& s, const torch::Tensor& t, double T) {
  const int64_t classes = s.size(-1), positions = s.numel() / classes;
  const double x = std::max(finite_max_abs(s), finite_max_abs(t));
  const double d = finite_max_abs(s - t);
  const double terms = name == "mse" ? d * d : std::max(T, 1.0) * x;
  return test::fp32_tolerance(std::max(classes, positions), 3, std::max(1.0, terms));
}

TEST(SoftLabelLossParityTest, ValuesAndGradientsMatchPyTorch) {
  const std::vector<std::string> cases = {"bc_t1",    "bc_t2",      "bc_t4_5",   "btv_mask_t2",
                                          "equal_t2", "large_t1",   "large_t4_5", "topk_t2"};
  double worst32 = 0, worst64 = 0;  // float32: largest diff / tolerance; float64: largest scaled diff
  for (const auto& c : cases) {
    SafeTensorsFile f(golden_file("soft_" + c));
    const double T = std::stod(f.metadata().at("temperature"));
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      const bool fp32 = dtype == torch::kFloat32;
      double& worst = fp32 ? worst32 : worst64;
      const auto t = f.load("teacher", dtype), mask = f.load("mask", dtype);
      for (const auto& name : kLosses) {
        SCOPED_TRACE(c + " " + name + (fp32 ? " fp32" : " fp64"));
        // float32: absolute differences within the derived bound; float64: scaled differences within 1e-10.
        const double tol = fp32 ? loss_tolerance(name, f.load("student"), f.load("teacher"), T) : 1e-10;
        const auto diff = fp32 ? abs_diff : scaled_diff;
        auto s = f.load("student", dtype).requires_grad_(true);
        const auto per = soft_loss_registry().get(name, "test")(s, t, T);
        const auto value = masked_mean(per, mask);
        value.backward();
        ASSERT_EQ(per.scalar_type(), dtype);
        ASSERT_EQ(per.sizes(), f.load(name + ".per").sizes());
        // Per-position values only where the mask keeps them: padded positions are not compared.
        const auto keep = mask.ne(0);
        const auto want_per = f.load(name + ".per", torch::kFloat64).index({keep});
        const double d_per = diff(per.detach().index({keep}), want_per);
        const double d_val = diff(value.detach(), f.load(name + ".value", torch::kFloat64));
        const double d_grad = diff(s.grad(), f.load(name + ".grad", torch::kFloat64));
        EXPECT_LE(d_per, tol);
        EXPECT_LE(d_val, tol);
        EXPECT_LE(d_grad, tol);
        worst = std::max({worst, d_per / (fp32 ? tol : 1.0), d_val / (fp32 ? tol : 1.0), d_grad / (fp32 ? tol : 1.0)});
      }
    }
  }
  std::printf("[ losses   ] soft losses vs PyTorch (float64 reference): fp32 largest diff / tolerance %.3g, "
              "fp64 max scaled diff %.3g\n", worst32, worst64);
}

}  // namespace
}  // namespace kd
