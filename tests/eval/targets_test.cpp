#include "kd/eval/targets.h"

#include <gtest/gtest.h>

#include "expect_error.h"
#include "kd/error.h"

namespace kd {
namespace {

using test::expect_error;

const std::vector<TargetSpec> kSpecs = {{"speedup", "speed-up", TargetSense::kAtLeast},
                                        {"ratio", "share of the teacher", TargetSense::kAtMost},
                                        {"better", "beats the baseline", TargetSense::kRequired}};

Measurement m(double v, double lo = NAN, double hi = NAN) {
  Measurement x;
  x.value = v;
  x.low = lo;
  x.high = hi;
  return x;
}

TEST(TargetsTest, JudgeUsesTheSpreadBothWays) {
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(12)), Verdict::kMet);
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(10)), Verdict::kMet);
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(9.99)), Verdict::kNotMet);
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(12, 10.5, 13)), Verdict::kMet);
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(12, 9, 13)), Verdict::kWithinNoise);
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(8, 7, 9.5)), Verdict::kNotMet);
  EXPECT_EQ(judge(TargetSense::kAtMost, 0.25, m(0.1)), Verdict::kMet);
  EXPECT_EQ(judge(TargetSense::kAtMost, 0.25, m(0.3)), Verdict::kNotMet);
  EXPECT_EQ(judge(TargetSense::kAtMost, 0.25, m(0.2, 0.1, 0.3)), Verdict::kWithinNoise);
  EXPECT_EQ(judge(TargetSense::kRequired, 1, m(1)), Verdict::kMet);
  EXPECT_EQ(judge(TargetSense::kRequired, 1, m(0)), Verdict::kNotMet);
  EXPECT_EQ(judge(TargetSense::kAtLeast, 10, m(NAN)), Verdict::kNotMeasured);
  EXPECT_EQ(judge(TargetSense::kRequired, 1, m(NAN)), Verdict::kNotMeasured);
  EXPECT_STREQ(verdict_name(Verdict::kWithinNoise), "within noise");
}

TEST(TargetsTest, ReadsDeclaredTargetsInOrder) {
  auto cfg = Config::from_string("targets: {ratio: 0.25, speedup: 3, better: true}\n");
  const auto d = read_targets(cfg.root().child("targets"), kSpecs);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].key, "ratio");
  EXPECT_DOUBLE_EQ(d[0].value, 0.25);
  EXPECT_EQ(d[1].key, "speedup");
  EXPECT_DOUBLE_EQ(d[2].value, 1);
  cfg.check_all_used();  // every declared key was read

  auto off = Config::from_string("targets: {better: false}\n");
  EXPECT_TRUE(read_targets(off.root().child("targets"), kSpecs).empty());
  auto none = Config::from_string("x: 1\n");
  EXPECT_TRUE(read_targets(none.root().child("targets"), kSpecs).empty());
}

TEST(TargetsTest, BadTargetsAreOneLineErrorsNamingTheKey) {
  auto unknown = Config::from_string("targets:\n  speedup: 3\n  sppedup_b1: 2\n", "t.yaml");
  expect_error<ConfigError>([&] { read_targets(unknown.root().child("targets"), kSpecs); },
                            {"t.yaml", "targets.sppedup_b1", "line 3", "unknown target", "speedup, ratio, better"});
  for (const char* bad : {"0", "-1", ".inf", ".nan", "fast", "true"}) {
    auto c = Config::from_string(std::string("targets: {speedup: ") + bad + "}\n");
    expect_error<ConfigError>([&] { read_targets(c.root().child("targets"), kSpecs); }, {"targets.speedup"});
  }
  auto yes_no = Config::from_string("targets: {better: 2}\n");
  expect_error<ConfigError>([&] { read_targets(yes_no.root().child("targets"), kSpecs); },
                            {"targets.better", "true or false"});
}

TEST(TargetsTest, EvaluateAndPrint) {
  const std::vector<DeclaredTarget> d = {{"speedup", 3}, {"ratio", 0.25}, {"better", 1}};
  const auto results = evaluate_targets(d, kSpecs, [](const std::string& key) {
    if (key == "speedup") return m(3.8, 3.2, 4.4);
    if (key == "ratio") return m(0.4);
    return m(NAN);
  });
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].verdict, Verdict::kMet);
  EXPECT_EQ(results[1].verdict, Verdict::kNotMet);
  EXPECT_EQ(results[2].verdict, Verdict::kNotMeasured);
  const std::string md = targets_markdown(results);
  EXPECT_NE(md.find("| speed-up (`speedup`) | ≥ 3 | 3.8 (3.2–4.4) | **met** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| share of the teacher (`ratio`) | ≤ 0.25 | 0.4 | **not met** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| beats the baseline (`better`) | yes | — | **not measured** |"), std::string::npos) << md;
  EXPECT_EQ(results[1].to_json()["comparison"], "at_most");
  EXPECT_TRUE(results[2].to_json()["measured"].is_null());
  EXPECT_EQ(targets_markdown({}), "");
  const auto back = targets_from_json(targets_to_json(d));
  EXPECT_EQ(back.size(), 3u);
}

}  // namespace
}  // namespace kd
