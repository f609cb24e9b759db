// Feature-knowledge losses (hidden states, attention scores, attention and relation distributions):
// properties, padding and gradients (unit), and values and gradients against independent float64 PyTorch
// references written from the papers' definitions (parity, tests/python/golden_feature_losses.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/safetensors.h"
#include "kd/losses/feature_losses.h"
#include "../expect_error.h"
#include "../test_paths.h"
#include "grad_check.h"

namespace kd {
namespace {

using Fn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;
enum class Kind { Hidden, Scores, Relation };  // (B, T, H) pairs, (B, h, T, T) pairs, (B, T, Hs) / (B, T, Ht)

struct Loss {
  std::string name;
  Kind kind;
  Fn fn;
};

const int64_t kRelationHeads = 2;
const std::vector<Loss> kLosses = {
    {"hidden_mse", Kind::Hidden, hidden_mse},
    {"hidden_cosine", Kind::Hidden, hidden_cosine},
    {"attention_score_mse", Kind::Scores, attention_score_mse},
    {"attention_kl", Kind::Scores, attention_kl},
    {"relation_kl", Kind::Relation,
     [](const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& m) { return relation_kl(s, t, m, kRelationHeads); }},
};

struct Inputs {
  torch::Tensor s, t;  // student, teacher
};

// Random float64 student and teacher for a batch of B rows of T positions: H = 6, h = 3, Hs = 4, Ht = 6.
Inputs inputs(Kind kind, int64_t B, int64_t T) {
  switch (kind) {
    case Kind::Hidden: return {torch::randn({B, T, 6}, torch::kFloat64), torch::randn({B, T, 6}, torch::kFloat64)};
    case Kind::Scores:
      return {torch::randn({B, 3, T, T}, torch::kFloat64) * 2, torch::randn({B, 3, T, T}, torch::kFloat64) * 2};
    case Kind::Relation: return {torch::randn({B, T, 4}, torch::kFloat64), torch::randn({B, T, 6}, torch::kFloat64)};
  }
  return {};
}

// Rows of 5 positions with 5, 3, 1 and 0 real tokens.
torch::Tensor padded_mask() {
  return torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}, {1, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}, torch::kInt64);
}

// True where an element of x (B, T, ...) or scores (B, h, T, T) touches a padded position.
torch::Tensor padding_of(Kind kind, const torch::Tensor& x, const torch::Tensor& mask) {
  const auto pad = mask.eq(0);
  const int64_t B = mask.size(0), T = mask.size(1);
  if (kind != Kind::Scores) return pad.view({B, T, 1}).expand_as(x);
  return (pad.view({B, 1, T, 1}) | pad.view({B, 1, 1, T})).expand_as(x);
}

double max_abs(const torch::Tensor& t) { return t.numel() ? t.abs().max().item<double>() : 0.0; }

// Value and gradient with respect to the student.
std::pair<torch::Tensor, torch::Tensor> value_and_grad(const Loss& l, const torch::Tensor& s, const torch::Tensor& t,
                                                       const torch::Tensor& mask) {
  auto x = s.detach().clone().requires_grad_(true);
  const auto v = l.fn(x, t, mask);
  v.backward();
  return {v.detach(), x.grad()};
}

TEST(FeatureLossTest, ShapesAndErrors) {
  torch::manual_seed(1);
  const auto mask = padded_mask();
  for (const auto& l : kLosses) {
    SCOPED_TRACE(l.name);
    const auto in = inputs(l.kind, 4, 5);
    const auto &s = in.s, &t = in.t;
    const auto v = l.fn(s, t, mask);
    EXPECT_EQ(v.dim(), 0);
    EXPECT_EQ(v.scalar_type(), torch::kFloat64);
    EXPECT_EQ(l.fn(s.to(torch::kFloat32), t, mask).scalar_type(), torch::kFloat32);  // the teacher follows
    // Rank, B, T and mask shape errors name the function and the shapes.
    test::expect_error<DataError>([&] { l.fn(s[0], t[0], mask); }, {l.name, "student", "teacher"});
    test::expect_error<DataError>([&] { l.fn(s, t.narrow(0, 0, 3), mask); }, {l.name, "B and T"});
    const auto shorter = l.kind == Kind::Scores ? t.narrow(2, 0, 4).narrow(3, 0, 4) : t.narrow(1, 0, 4);
    test::expect_error<DataError>([&] { l.fn(s, shorter, mask); }, {l.name, "B and T"});
    test::expect_error<DataError>([&] { l.fn(s, t, mask.narrow(1, 0, 4)); }, {l.name, "mask (4, 4)", "(4, 5)"});
    test::expect_error<DataError>([&] { l.fn(s, t, mask[0]); }, {l.name, "mask (5)"});
    test::expect_error<DataError>([&] { l.fn(s, torch::Tensor(), mask); }, {l.name, "(undefined)"});
    test::expect_error<DataError>([&] { l.fn(s.to(torch::kInt64), t, mask); }, {l.name, "floating point"});
  }
  // Hidden losses: same width; attention losses: same heads (and square scores).
  const auto h = torch::randn({2, 3, 4}), m = torch::ones({2, 3});
  test::expect_error<DataError>([&] { hidden_mse(h, torch::randn({2, 3, 5}), m); },
                                {"hidden_mse", "(2, 3, 4)", "(2, 3, 5)", "same width"});
  test::expect_error<DataError>([&] { hidden_cosine(h, torch::randn({2, 3, 5}), m); }, {"hidden_cosine", "same width"});
  const auto a = torch::randn({2, 4, 3, 3});
  for (const auto& [name, fn] : std::vector<std::pair<std::string, Fn>>{{"attention_score_mse", attention_score_mse},
                                                                        {"attention_kl", attention_kl}}) {
    test::expect_error<DataError>([&, &fn = fn] { fn(a, torch::randn({2, 2, 3, 3}), m); },
                                  {name, "(2, 4, 3, 3)", "(2, 2, 3, 3)", "different head counts (4 vs 2)",
                                   "a head mapping is needed"});
    test::expect_error<DataError>([&, &fn = fn] { fn(torch::randn({2, 4, 3, 2}), torch::randn({2, 4, 3, 2}), m); },
                                  {name, "(B, h, T, T)"});
  }
  // Relations: widths may differ but must split into relation_heads parts.
  EXPECT_NO_THROW(relation_kl(torch::randn({2, 3, 4}), torch::randn({2, 3, 6}), m, 2));
  test::expect_error<DataError>([&] { relation_kl(torch::randn({2, 3, 4}), torch::randn({2, 3, 6}), m, 3); },
                                {"relation_kl", "student width 4", "relation_heads 3"});
  test::expect_error<DataError>([&] { relation_kl(torch::randn({2, 3, 6}), torch::randn({2, 3, 8}), m, 3); },
                                {"relation_kl", "teacher width 8"});
  test::expect_error<DataError>([&] { relation_kl(torch::randn({2, 3, 0}), torch::randn({2, 3, 0}), m, 1); },
                                {"relation_kl", "student width 0"});
  test::expect_error<ConfigError>([&] { relation_kl(h, h, m, 0); }, {"relation_kl", "relation_heads 0"});
}

TEST(FeatureLossTest, ZeroWhenTheStudentIsTheTeacher) {
  torch::manual_seed(2);
  const auto mask = padded_mask();
  for (const auto& l : kLosses) {
    SCOPED_TRACE(l.name);
    const auto in = inputs(l.kind, 4, 5);
    // Losses are > 0 away from the teacher ...
    EXPECT_GT(l.fn(in.s, in.t, mask).item<double>(), 0.0);
    // ... and vanish, with their gradient, at the teacher (same width for the relation).
    const auto [v, g] = value_and_grad(l, in.t, in.t, mask);
    EXPECT_LT(std::abs(v.item<double>()), 1e-15);
    EXPECT_LT(max_abs(g), 1e-12);
    if (l.name != "hidden_cosine") {
      EXPECT_EQ(v.item<double>(), 0.0);  // exact: the same terms on both sides
    }
  }
  // The cosine ignores the scale of each position.
  const auto t = inputs(Kind::Hidden, 4, 5).t;
  EXPECT_LT(std::abs(hidden_cosine(t * 3.5, t, mask).item<double>()), 1e-15);
  // Attention KL ignores a per-query shift of the scores (softmax), the score MSE does not.
  const auto scores = inputs(Kind::Scores, 4, 5);
  const auto &a = scores.s, &b = scores.t;
  const auto shift = torch::randn({4, 3, 5, 1}, torch::kFloat64) * 10;
  EXPECT_LT(std::abs((attention_kl(a + shift, b, mask) - attention_kl(a, b, mask)).item<double>()), 1e-12);
  EXPECT_GT(attention_score_mse(b + shift, b, mask).item<double>(), 1.0);
}

TEST(FeatureLossTest, PaddingTakesNoPart) {
  torch::manual_seed(3);
  const auto mask = padded_mask();
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  for (const auto& l : kLosses) {
    SCOPED_TRACE(l.name);
    const auto in = inputs(l.kind, 4, 5);
    const auto &s = in.s, &t = in.t;
    const auto [v, g] = value_and_grad(l, s, t, mask);
    const auto ps = padding_of(l.kind, s, mask), pt = padding_of(l.kind, t, mask);
    EXPECT_TRUE(v.isfinite().item<bool>());
    EXPECT_EQ(max_abs(g.masked_select(ps)), 0.0);  // padded student entries get exactly 0
    // Whatever the padded positions hold (garbage, ±inf, NaN), value and gradient do not change.
    for (double fill : {1e4, inf, -inf, nan}) {
      const auto [v2, g2] = value_and_grad(l, s.masked_fill(ps, fill), t.masked_fill(pt, -fill), mask);
      EXPECT_EQ(v2.item<double>(), v.item<double>()) << fill;
      EXPECT_TRUE(g2.equal(g)) << fill;
    }
    // The same mask as float or bool gives the same value.
    EXPECT_EQ(l.fn(s, t, mask.to(torch::kFloat32)).item<double>(), v.item<double>());
    EXPECT_EQ(l.fn(s, t, mask.to(torch::kBool)).item<double>(), v.item<double>());
    // A row alone with its padding equals the row cut to its real length (padded keys are not in the
    // softmax): row 1 has 3 real tokens.
    const auto cut = [&](const torch::Tensor& x) {
      const auto row = x.narrow(0, 1, 1);
      return l.kind == Kind::Scores ? row.narrow(2, 0, 3).narrow(3, 0, 3) : row.narrow(1, 0, 3);
    };
    const double whole = l.fn(s.narrow(0, 1, 1), t.narrow(0, 1, 1), mask.narrow(0, 1, 1)).item<double>();
    EXPECT_NEAR(whole, l.fn(cut(s), cut(t), torch::ones({1, 3})).item<double>(), 1e-12 * std::max(1.0, whole));
  }
}

TEST(FeatureLossTest, AllPaddingGivesFiniteZero) {
  torch::manual_seed(4);
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const auto& l : kLosses) {
      SCOPED_TRACE(l.name + (dtype == torch::kFloat32 ? " fp32" : " fp64"));
      const auto in = inputs(l.kind, 2, 4);
      const auto s = in.s.to(dtype), t = in.t.to(dtype);
      // No real token at all: 0, and backward() works and gives 0.
      const auto [v, g] = value_and_grad(l, s, t, torch::zeros({2, 4}, torch::kInt64));
      EXPECT_EQ(v.item<double>(), 0.0);
      EXPECT_EQ(max_abs(g), 0.0);
      // A row of padding beside a real one, the padding holding NaN: finite, and exactly what finite padding
      // gives (in float32 too, where the lowest finite value that stands in for the padded keys is another).
      const auto mask = torch::tensor({{1, 1, 0, 0}, {0, 0, 0, 0}}, torch::kInt64);
      const auto [v2, g2] = value_and_grad(l, s.masked_fill(padding_of(l.kind, s, mask), std::nan("")),
                                           t.masked_fill(padding_of(l.kind, t, mask), std::nan("")), mask);
      const auto [v3, g3] = value_and_grad(l, s, t, mask);
      EXPECT_TRUE(v2.isfinite().item<bool>());
      EXPECT_GT(v2.item<double>(), 0.0);
      EXPECT_TRUE(g2.isfinite().all().item<bool>());
      EXPECT_EQ(v2.item<double>(), v3.item<double>());
      EXPECT_TRUE(g2.equal(g3));
    }
  }
}

TEST(FeatureLossTest, FiniteDifferenceGradients) {
  torch::manual_seed(5);
  const auto mask = padded_mask();
  for (const auto& l : kLosses) {
    for (const auto& m : {mask, torch::ones({4, 5}, torch::kInt64)}) {
      const auto in = inputs(l.kind, 4, 5);
      const double err = test::fd_gradient_error([&](const torch::Tensor& x) { return l.fn(x, in.t, m); }, in.s);
      EXPECT_LT(err, 1e-6) << l.name << (m.eq(0).any().item<bool>() ? " padded" : " unpadded");
    }
  }
  // Relations with several parts of different widths (d_r = 1 for the student, 3 for the teacher).
  const auto s = torch::randn({4, 5, 4}, torch::kFloat64), t = torch::randn({4, 5, 12}, torch::kFloat64);
  EXPECT_LT(test::fd_gradient_error([&](const torch::Tensor& x) { return relation_kl(x, t, mask, 4); }, s), 1e-6);
}

// relation_kl across widths is attention_kl on the relation scores x_r x_rᵀ / √d_r, built here by hand,
// each side scaled by its own part width.
TEST(FeatureLossTest, RelationsAcrossWidths) {
  torch::manual_seed(6);
  const auto mask = padded_mask();
  const auto relations = [](const torch::Tensor& x, int64_t R) {
    const int64_t d = x.size(2) / R;
    std::vector<torch::Tensor> heads;
    for (int64_t r = 0; r < R; ++r) {
      const auto part = x.narrow(2, r * d, d);  // (B, T, d)
      heads.push_back(torch::matmul(part, part.transpose(1, 2)) / std::sqrt(static_cast<double>(d)));
    }
    return torch::stack(heads, 1);  // (B, R, T, T)
  };
  const auto s = torch::randn({4, 5, 4}, torch::kFloat64), t = torch::randn({4, 5, 12}, torch::kFloat64);
  for (int64_t R : {1, 2, 4}) {
    const double v = relation_kl(s, t, mask, R).item<double>();
    EXPECT_GT(v, 0.0) << R;
    EXPECT_NEAR(v, attention_kl(relations(s, R), relations(t, R), mask).item<double>(), 1e-12) << R;
  }
  // A teacher whose parts are the student's, scaled by (d_t / d_s)^¼ and padded with zeros to width d_t = 6,
  // has the same relations (x_r x_rᵀ / √d_r on each side): loss 0 across widths 4 and 12.
  const double c = std::pow(6.0 / 2.0, 0.25);
  const auto zeros = torch::zeros({4, 5, 4}, torch::kFloat64);
  const auto teacher = torch::cat({s.narrow(2, 0, 2) * c, zeros, s.narrow(2, 2, 2) * c, zeros}, 2);  // (4, 5, 12)
  EXPECT_LT(std::abs(relation_kl(s, teacher, mask, 2).item<double>()), 1e-14);
}

// ---- parity with independent PyTorch references (golden files from tests/python/golden_feature_losses.py) ----

std::string golden_file(const std::string& name) {
  const std::string p = test::golden("losses/" + name + ".safetensors");
  if (!std::filesystem::exists(p)) throw std::runtime_error(p + " missing: run make_golden.py (golden_feature_losses) first");
  return p;
}

// Largest |got − want| / max(1, |want|): both sides compute in float64, so they agree to rounding (1e-16 relative,
// times the few reductions); 1e-10 leaves room for any summation order and fails on any real difference.
double scaled_diff(const torch::Tensor& got, const torch::Tensor& want) {
  if (!torch::isfinite(got).all().item<bool>()) return INFINITY;
  return ((got - want).abs() / want.abs().clamp_min(1)).max().item<double>();
}

TEST(FeatureLossParityTest, ValuesAndGradientsMatchPyTorch) {
  double worst = 0;
  for (const std::string c : {"mixed", "empty_row", "unpadded"}) {
    SafeTensorsFile f(golden_file("feature_" + c));
    const int64_t R = std::stoll(f.metadata().at("relation_heads"));
    const auto mask = f.load("mask", torch::kFloat64);  // int64 as stored
    ASSERT_EQ(mask.scalar_type(), torch::kInt64);
    for (const auto& l : kLosses) {
      SCOPED_TRACE(c + " " + l.name);
      const std::string kind = l.kind == Kind::Hidden ? "hidden" : l.kind == Kind::Scores ? "scores" : "relation";
      const Loss loss = l.kind != Kind::Relation
                            ? l
                            : Loss{l.name, l.kind,
                                   [R](const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& m) {
                                     return relation_kl(s, t, m, R);
                                   }};
      const auto [v, g] = value_and_grad(loss, f.load(kind + ".student", torch::kFloat64),
                                         f.load(kind + ".teacher", torch::kFloat64), mask);
      const double dv = scaled_diff(v, f.load(l.name + ".value", torch::kFloat64));
      const double dg = scaled_diff(g, f.load(l.name + ".grad", torch::kFloat64));
      EXPECT_LE(dv, 1e-10);
      EXPECT_LE(dg, 1e-10);
      worst = std::max({worst, dv, dg});
    }
  }
  std::printf("[ losses   ] feature losses vs PyTorch (float64 both sides): max scaled diff %.3g\n", worst);
}

}  // namespace
}  // namespace kd
