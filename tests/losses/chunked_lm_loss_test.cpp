// ChunkedLmLossTest: the chunked token-level divergences and cross-entropy against the plain reference
// that materializes all logits (values and autograd gradients, every chunk size), finite differences in
// double, the top-k bucket form, and bad input. TokenDivergenceParityTest: values and gradients against
// independent PyTorch references (tests/python/golden_lm_losses.py).
#include "kd/losses/chunked_lm_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kd/error.h"
#include "kd/io/safetensors.h"
#include "../test_paths.h"
#include "../tolerance.h"
#include "grad_check.h"

namespace kd {
namespace {

const auto kDouble = torch::TensorOptions().dtype(torch::kFloat64);

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

struct Grads {
  torch::Tensor value, h, w;
};

// Value and gradients with respect to h and W of `f(h, W)`.
template <typename F>
Grads grads(const torch::Tensor& h0, const torch::Tensor& w0, F f) {
  auto h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
  auto v = f(h, w);
  auto g = torch::autograd::grad({v}, {h, w});
  return {v.detach(), g[0], g[1]};
}

DivergenceOptions opts(const std::string& name, double T, double mix) {
  DivergenceOptions o;
  o.kind = parse_divergence(name);
  o.temperature = T;
  o.mix = mix;
  return o;
}

// The reference: full logits, plain autograd, weighted mean.
torch::Tensor reference(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& teacher,
                        const torch::Tensor& weights, const DivergenceOptions& o) {
  return (token_divergence(h.matmul(w.t()), teacher, o) * weights).sum() / weights.sum();
}

TEST(ChunkedLmLossTest, ChunkedEqualsUnchunkedForEveryDivergenceAndChunkSize) {
  torch::manual_seed(5);
  const auto h = torch::randn({9, 4}, kDouble), w = torch::randn({13, 4}, kDouble);
  const auto th = torch::randn({9, 6}, kDouble), tw = torch::randn({13, 6}, kDouble);  // teacher of another width
  const auto teacher = th.matmul(tw.t());
  const auto weights = torch::tensor({1., 0., 1., 1., 1., 0., 1., 1., 1.}, kDouble);
  for (const auto& name : divergence_names()) {
    for (double T : {1.0, 2.5}) {
      const auto o = opts(name, T, 0.3);
      const auto ref = grads(h, w, [&](auto& a, auto& b) { return reference(a, b, teacher, weights, o); });
      for (int64_t chunk : {1, 4, 9, 100}) {
        for (bool from_hidden : {false, true}) {
          const auto t = from_hidden ? TokenTargets::from_hidden(th, tw) : TokenTargets::from_logits(teacher);
          const auto got =
              grads(h, w, [&](auto& a, auto& b) { return chunked_token_divergence(a, b, t, weights, o, chunk); });
          const std::string at = name + " T=" + std::to_string(T) + " chunk=" + std::to_string(chunk);
          EXPECT_NEAR(got.value.item<double>(), ref.value.item<double>(), 1e-12) << at;
          EXPECT_LT(max_diff(got.h, ref.h), 1e-12) << at;
          EXPECT_LT(max_diff(got.w, ref.w), 1e-12) << at;
        }
      }
    }
  }
}

TEST(ChunkedLmLossTest, FiniteDifferenceGradients) {
  torch::manual_seed(6);
  const auto h = torch::randn({5, 3}, kDouble), w = torch::randn({7, 3}, kDouble);
  const auto teacher = torch::randn({5, 7}, kDouble) * 2;
  const auto weights = torch::tensor({1., 1., 0., 1., 1.}, kDouble);
  auto [top, ids] = torch::log_softmax(teacher / 2.0, 1).topk(3, 1);
  const auto rest = torch::log_softmax(teacher / 2.0, 1)
                        .scatter(1, ids, -std::numeric_limits<double>::infinity())
                        .logsumexp(1);
  for (const auto& name : divergence_names()) {
    const auto o = opts(name, 2.0, 0.4);
    for (bool topk : {false, true}) {
      const auto t = topk ? TokenTargets::from_topk(ids, top, rest) : TokenTargets::from_logits(teacher);
      const std::string at = name + (topk ? " top-k" : " dense");
      EXPECT_LT(test::fd_gradient_error([&](const torch::Tensor& x) {
                  return chunked_token_divergence(x, w, t, weights, o, 2);
                }, h), 1e-6) << at << " (h)";
      EXPECT_LT(test::fd_gradient_error([&](const torch::Tensor& x) {
                  return chunked_token_divergence(h, x, t, weights, o, 2);
                }, w), 1e-6) << at << " (W)";
    }
  }
  const auto labels = torch::tensor({3, -1, 0, 6, 2}, torch::kInt64);
  EXPECT_LT(test::fd_gradient_error([&](const torch::Tensor& x) { return chunked_cross_entropy(x, w, labels, 2); }, h),
            1e-6);
  EXPECT_LT(test::fd_gradient_error([&](const torch::Tensor& x) { return chunked_cross_entropy(h, x, labels, 2); }, w),
            1e-6);
}

TEST(ChunkedLmLossTest, TopKWithOneTokenLeftOutEqualsTheDenseDivergence) {
  // With k = V − 1 the rest bucket is a single token, so the k + 1 buckets are the full distribution.
  torch::manual_seed(7);
  const auto h = torch::randn({6, 4}, kDouble), w = torch::randn({8, 4}, kDouble);
  const auto teacher = torch::randn({6, 8}, kDouble) * 2;
  const auto weights = torch::ones({6}, kDouble);
  const auto lq = torch::log_softmax(teacher / 1.5, 1);
  auto [top, ids] = lq.topk(7, 1);
  const auto rest = lq.scatter(1, ids, -std::numeric_limits<double>::infinity()).logsumexp(1);
  for (const auto& name : divergence_names()) {
    const auto o = opts(name, 1.5, 0.3);
    const auto dense = grads(h, w, [&](auto& a, auto& b) {
      return chunked_token_divergence(a, b, TokenTargets::from_logits(teacher), weights, o, 4);
    });
    const auto sparse = grads(h, w, [&](auto& a, auto& b) {
      return chunked_token_divergence(a, b, TokenTargets::from_topk(ids, top, rest), weights, o, 4);
    });
    EXPECT_NEAR(sparse.value.item<double>(), dense.value.item<double>(), 1e-12) << name;
    EXPECT_LT(max_diff(sparse.h, dense.h), 1e-12) << name;
    EXPECT_LT(max_diff(sparse.w, dense.w), 1e-12) << name;
  }
}

TEST(ChunkedLmLossTest, DivergencesAreZeroAtTheTeacherAndNonNegative) {
  torch::manual_seed(8);
  const auto h = torch::randn({10, 4}, kDouble), w = torch::randn({9, 4}, kDouble);
  const auto same = h.matmul(w.t());
  const auto weights = torch::ones({10}, kDouble);
  for (const auto& name : divergence_names()) {
    const auto o = opts(name, 2.0, 0.5);
    EXPECT_NEAR(chunked_token_divergence(h, w, TokenTargets::from_logits(same), weights, o, 3).item<double>(), 0, 1e-12)
        << name;
    EXPECT_GT(chunked_token_divergence(h, w, TokenTargets::from_logits(same * 3), weights, o, 3).item<double>(), 0)
        << name;
  }
}

TEST(ChunkedLmLossTest, CrossEntropyMatchesTorch) {
  torch::manual_seed(9);
  const auto h = torch::randn({7, 4}, kDouble), w = torch::randn({10, 4}, kDouble);
  const auto labels = torch::tensor({1, -1, 9, 0, -1, 4, 4}, torch::kInt64);
  const auto ref = grads(h, w, [&](auto& a, auto& b) {
    return torch::nn::functional::cross_entropy(a.matmul(b.t()), labels,
                                                torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));
  });
  const auto got = grads(h, w, [&](auto& a, auto& b) { return chunked_cross_entropy(a, b, labels, 3); });
  EXPECT_NEAR(got.value.item<double>(), ref.value.item<double>(), 1e-12);
  EXPECT_LT(max_diff(got.h, ref.h), 1e-12);
  EXPECT_LT(max_diff(got.w, ref.w), 1e-12);
  const auto s = chunked_nll_sum(h, w, labels, 2);
  EXPECT_EQ(s.tokens, 5);
  EXPECT_NEAR(s.nll / 5, ref.value.item<double>(), 1e-12);
}

TEST(ChunkedLmLossTest, BadInput) {
  const auto h = torch::randn({3, 2}), w = torch::randn({5, 2});
  const auto t = TokenTargets::from_logits(torch::randn({3, 5}));
  const auto ones = torch::ones({3});
  try {
    parse_divergence("kl", "distill.divergence");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("fkl, rkl, jsd, tvd, skew_kl, skew_rkl"), std::string::npos) << e.what();
  }
  DivergenceOptions o;
  EXPECT_THROW(chunked_token_divergence(h, w, t, ones, o, 0), ConfigError);
  EXPECT_THROW(chunked_cross_entropy(h, w, torch::zeros({3}, torch::kInt64), -1), ConfigError);
  EXPECT_THROW(chunked_token_divergence(h, w, TokenTargets::from_logits(torch::randn({3, 4})), ones, o, 2), DataError);
  EXPECT_THROW(chunked_token_divergence(h, w, t, torch::ones({2}), o, 2), DataError);
  o.temperature = 0;
  EXPECT_THROW(chunked_token_divergence(h, w, t, ones, o, 2), ConfigError);
  o = opts("jsd", 1, 1.0);
  EXPECT_THROW(o.validate(), ConfigError);
  o = opts("skew_kl", 1, -0.1);
  EXPECT_THROW(o.validate(), ConfigError);
  EXPECT_THROW(chunked_cross_entropy(h, w, torch::tensor({0, 5, 1}, torch::kInt64), 2), DataError);
  // Nothing to learn from: 0 with a zero gradient, not NaN.
  auto hh = h.clone().requires_grad_(true);
  auto v = chunked_token_divergence(hh, w, t, torch::zeros({3}), opts("fkl", 1, 0.5), 2);
  v.backward();
  EXPECT_EQ(v.item<double>(), 0);
  EXPECT_EQ(hh.grad().abs().sum().item<double>(), 0);
}

TEST(TokenDivergenceParityTest, ValuesAndGradientsMatchPyTorch) {
  for (const std::string c : {"dense_t2", "dense_t1", "equal_t1_5", "topk4_t2"}) {
    SafeTensorsFile f(test::golden("losses/token_" + c + ".safetensors"));
    const double T = std::stod(f.metadata().at("temperature")), mix = std::stod(f.metadata().at("mix"));
    const auto h = f.load("h", torch::kFloat64), w = f.load("W", torch::kFloat64);
    const auto weights = f.load("weights", torch::kFloat64);
    // The float32 path's rounding bound (tests/tolerance.h): reductions over the hidden width (the logits),
    // the vocabulary and the tokens, three deep; terms up to about max(T, 1)·max|logit| (log-probabilities
    // of logits / T, scaled by T² in the divergences that use it).
    const double max_logit = h.matmul(w.t()).abs().max().item<double>();
    const double tol32 = test::fp32_tolerance(std::max({h.size(1), w.size(0), h.size(0)}), 3,
                                              std::max(1.0, std::max(T, 1.0) * max_logit));
    const auto t = f.contains("teacher") ? TokenTargets::from_logits(f.load("teacher", torch::kFloat64))
                                         : TokenTargets::from_topk(f.load("topk_ids"),
                                                                   f.load("topk_logprobs", torch::kFloat64),
                                                                   f.load("rest_logprob", torch::kFloat64));
    for (const auto& name : divergence_names()) {
      const auto got = grads(h, w, [&](auto& a, auto& b) {
        return chunked_token_divergence(a, b, t, weights, opts(name, T, mix), 3);
      });
      const std::string at = c + " " + name;
      EXPECT_NEAR(got.value.item<double>(), f.load(name + ".value", torch::kFloat64).item<double>(), 1e-10) << at;
      EXPECT_LT(max_diff(got.h, f.load(name + ".grad_h", torch::kFloat64)), 1e-10) << at;
      EXPECT_LT(max_diff(got.w, f.load(name + ".grad_w", torch::kFloat64)), 1e-10) << at;
      // The float32 path, as training runs it.
      const auto f32 = chunked_token_divergence(h.to(torch::kFloat32), w.to(torch::kFloat32), t,
                                                weights.to(torch::kFloat32), opts(name, T, mix), 3);
      EXPECT_NEAR(f32.item<double>(), got.value.item<double>(), tol32) << at;
    }
  }
  SafeTensorsFile f(test::golden("losses/ce.safetensors"));
  const auto got = grads(f.load("h", torch::kFloat64), f.load("W", torch::kFloat64),
                         [&](auto& a, auto& b) { return chunked_cross_entropy(a, b, f.load("labels"), 3); });
  EXPECT_NEAR(got.value.item<double>(), f.load("value", torch::kFloat64).item<double>(), 1e-10);
  EXPECT_LT(max_diff(got.h, f.load("grad_h", torch::kFloat64)), 1e-10);
  EXPECT_LT(max_diff(got.w, f.load("grad_w", torch::kFloat64)), 1e-10);
}

}  // namespace
}  // namespace kd
