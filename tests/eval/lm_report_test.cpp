// LmReportTest: the verdicts of the causal-LM distillation report (lm_report.h) on synthetic profiles —
// each declared target met and missed, as report.json and report.md state them; the baseline target
// "not measured" without a baseline; a target exactly at its threshold; the targets read from
// report.targets (unknown key, bad thresholds); and the held-out slice and warnings in both files.
#include "kd/eval/lm_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "expect_error.h"
#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "test_paths.h"

namespace kd {
namespace {

std::vector<DeclaredTarget> targets(const std::string& yaml) {
  auto c = Config::from_string(yaml, "<test>");
  auto t = read_lm_targets(c.root().child("report").child("targets"));
  c.check_all_used();
  return t;
}

const char* kAllTargets =
    "report: {targets: {non_embedding_ratio: 0.25, perplexity_below_baseline: true, generate_speedup: 3}}\n";

LmReportModel model(const std::string& name, int64_t non_embedding, double generate_tps, double perplexity) {
  LmReportModel m;
  m.name = name;
  m.profile.parameters = non_embedding + 5000;
  m.profile.non_embedding_parameters = non_embedding;
  m.profile.layers = 2;
  m.profile.generate_tokens_per_s = generate_tps;
  m.profile.prefill_tokens_per_s = 10 * generate_tps;
  m.profile.repeats = 3;
  m.perplexity.perplexity = perplexity;
  m.curve = {{1, 64, 3.0, perplexity * 1.5}, {2, 128, 2.5, perplexity * 1.2}};
  return m;
}

// Student: `ratio` of the teacher's non-embedding parameters, `speedup` × its generation tokens/s, and
// perplexity `student_ppl` against the baseline's 150.
LmReport report(double ratio, double speedup, double student_ppl, bool baseline = true) {
  LmReport r;
  r.cpu = "test cpu";
  r.date = "2026-01-01T00:00:00Z";
  r.threads = 2;
  r.train_file = "train.txt";
  r.eval_file = "eval.txt";
  r.train_tokens = 1024;
  r.teacher = model("teacher", 100000, 10.0, 50.0);
  r.teacher.curve.clear();
  r.student = model("distilled student", static_cast<int64_t>(100000 * ratio), 10.0 * speedup, student_ppl);
  r.has_baseline = baseline;
  if (baseline) r.baseline = model("baseline student", static_cast<int64_t>(100000 * ratio), 10.0 * speedup, 150.0);
  r.held_out = {"data.train (unused tail)", "train.txt", 1024, 1536};
  r.targets = targets(kAllTargets);
  return r;
}

struct Written {
  nlohmann::json json;
  std::string md;
};

Written write(const LmReport& r, const std::string& name) {
  const auto dir = test::temp_dir("lm_report_" + name);
  write_lm_report(dir.string(), r);
  return {read_json((dir / "report.json").string()), read_file((dir / "report.md").string())};
}

std::string verdict_in_json(const nlohmann::json& j, const std::string& key) {
  for (const auto& t : j.at("targets"))
    if (t.at("key") == key) return t.at("verdict").get<std::string>();
  return "<absent>";
}

// The report.md table row of a target (the line naming `key`), or "" when there is none.
std::string md_row(const std::string& md, const std::string& key) {
  std::istringstream in(md);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("| ", 0) == 0 && line.find("(`" + key + "`)") != std::string::npos) return line;
  return "";
}

const char* kKeys[] = {"non_embedding_ratio", "perplexity_below_baseline", "generate_speedup"};

TEST(LmReportTest, EveryTargetMet) {
  const auto w = write(report(0.1, 3.8, 120.0), "met");
  ASSERT_EQ(w.json.at("targets").size(), 3u);
  for (const char* k : kKeys) {
    EXPECT_EQ(verdict_in_json(w.json, k), "met") << k;
    const auto row = md_row(w.md, k);
    EXPECT_NE(row.find("| **met** |"), std::string::npos) << k << ": " << row;
  }
  // Figures and thresholds as measured and declared.
  const auto& t = w.json.at("targets");
  EXPECT_EQ(t[0]["key"], "non_embedding_ratio");  // declared order
  EXPECT_NEAR(t[0]["measured"].get<double>(), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(t[0]["target"].get<double>(), 0.25);
  EXPECT_EQ(t[0]["comparison"], "at_most");
  EXPECT_EQ(t[1]["measured"], true);
  EXPECT_EQ(t[1]["target"], true);
  EXPECT_NEAR(t[2]["measured"].get<double>(), 3.8, 1e-12);
  EXPECT_DOUBLE_EQ(t[2]["target"].get<double>(), 3.0);
  EXPECT_EQ(t[2]["comparison"], "at_least");
  EXPECT_FALSE(t[2].contains("spread"));  // one median per model: no spread to give
  EXPECT_EQ(w.json.at("declared_targets"),
            (nlohmann::json{{"non_embedding_ratio", 0.25}, {"perplexity_below_baseline", 1.0}, {"generate_speedup", 3.0}}));
  EXPECT_EQ(w.md.find("not met"), std::string::npos) << w.md;
}

TEST(LmReportTest, EveryTargetMissed) {
  const auto w = write(report(0.4, 2.0, 200.0), "missed");
  for (const char* k : kKeys) {
    EXPECT_EQ(verdict_in_json(w.json, k), "not met") << k;
    const auto row = md_row(w.md, k);
    EXPECT_NE(row.find("| **not met** |"), std::string::npos) << k << ": " << row;
  }
  EXPECT_EQ(w.json.at("targets")[1]["measured"], false);
  EXPECT_NE(md_row(w.md, "perplexity_below_baseline").find("200.00 vs 150.00"), std::string::npos);
}

TEST(LmReportTest, EachTargetJudgedOnItsOwnFigure) {
  // Only the speed-up misses.
  const auto w = write(report(0.1, 2.9, 120.0), "speed_missed");
  EXPECT_EQ(verdict_in_json(w.json, "non_embedding_ratio"), "met");
  EXPECT_EQ(verdict_in_json(w.json, "perplexity_below_baseline"), "met");
  EXPECT_EQ(verdict_in_json(w.json, "generate_speedup"), "not met");
  // Exactly at a threshold meets it (≤ 0.25, ≥ 3); an equal perplexity is not below the baseline's.
  const auto edge = write(report(0.25, 3.0, 150.0), "edge");
  EXPECT_EQ(verdict_in_json(edge.json, "non_embedding_ratio"), "met");
  EXPECT_EQ(verdict_in_json(edge.json, "generate_speedup"), "met");
  EXPECT_EQ(verdict_in_json(edge.json, "perplexity_below_baseline"), "not met");
}

TEST(LmReportTest, WithoutBaselineTheBaselineTargetIsNotMeasured) {
  const auto w = write(report(0.1, 3.8, 120.0, /*baseline=*/false), "no_baseline");
  EXPECT_FALSE(w.json.contains("baseline"));
  EXPECT_EQ(verdict_in_json(w.json, "perplexity_below_baseline"), "not measured");
  EXPECT_TRUE(w.json.at("targets")[1]["measured"].is_null());
  EXPECT_EQ(verdict_in_json(w.json, "non_embedding_ratio"), "met");
  EXPECT_EQ(verdict_in_json(w.json, "generate_speedup"), "met");
  const auto row = md_row(w.md, "perplexity_below_baseline");
  EXPECT_NE(row.find("| **not measured** |"), std::string::npos) << row;
  EXPECT_NE(row.find("no baseline trained"), std::string::npos) << row;
}

TEST(LmReportTest, OnlyDeclaredTargetsAreJudged) {
  auto r = report(0.1, 3.8, 120.0);
  r.targets = targets("report: {targets: {generate_speedup: 5, perplexity_below_baseline: false}}\n");
  auto w = write(r, "some");
  ASSERT_EQ(w.json.at("targets").size(), 1u);  // a `false` yes/no target asks for nothing
  EXPECT_EQ(verdict_in_json(w.json, "generate_speedup"), "not met");
  EXPECT_EQ(md_row(w.md, "non_embedding_ratio"), "");
  r.targets.clear();
  w = write(r, "none");
  EXPECT_TRUE(w.json.at("targets").empty());
  EXPECT_NE(w.md.find("No targets declared"), std::string::npos);
}

TEST(LmReportTest, UnknownTargetKeyIsConfigErrorNamingIt) {
  test::expect_error<ConfigError>([] { targets("report: {targets: {speedup_b1: 3}}\n"); },
                                  {"speedup_b1", "report.targets", "generate_speedup"});
  test::expect_error<ConfigError>(
      [] { targets("report:\n  targets:\n    generate_speedup: 3\n    perplexity_below_teacher: true\n"); },
      {"perplexity_below_teacher", "line 4"});
}

TEST(LmReportTest, BadThresholdsAreConfigErrors) {
  for (const std::string bad : {"0", "-0.5", "abc", "true", ".nan", ".inf", "[1, 2]"}) {
    test::expect_error<ConfigError>([&] { targets("report: {targets: {generate_speedup: " + bad + "}}\n"); },
                                    {"report.targets.generate_speedup"});
    test::expect_error<ConfigError>([&] { targets("report: {targets: {non_embedding_ratio: " + bad + "}}\n"); },
                                    {"report.targets.non_embedding_ratio"});
  }
  for (const std::string bad : {"3", "yes please", "0"})
    test::expect_error<ConfigError>(
        [&] { targets("report: {targets: {perplexity_below_baseline: " + bad + "}}\n"); },
        {"report.targets.perplexity_below_baseline", "true or false"});
  EXPECT_EQ(targets("report: {targets: {generate_speedup: 0.5}}\n").at(0).value, 0.5);
}

TEST(LmReportTest, HeldOutSliceAndWarningsAreInBothFiles) {
  auto r = report(0.1, 3.8, 120.0);
  auto w = write(r, "held_out");
  EXPECT_EQ(w.json.at("held_out"), (nlohmann::json{{"source", "data.train (unused tail)"},
                                                     {"file", "train.txt"},
                                                     {"token_begin", 1024},
                                                     {"token_end", 1536},
                                                     {"tokens", 512}}));
  EXPECT_TRUE(w.json.at("warnings").empty());
  EXPECT_NE(w.json.at("eval_measured").get<std::string>().find("once, after training"), std::string::npos);
  EXPECT_NE(w.md.find("tokens 1024–1536 of `train.txt` (data.train (unused tail))"), std::string::npos) << w.md;
  EXPECT_NE(w.md.find("measured once after training"), std::string::npos) << w.md;
  EXPECT_EQ(w.md.find("Warning"), std::string::npos);

  r.held_out = {"data.valid", "eval.txt", 0, 512};
  r.warnings = {"selection on the reported set: data.valid and data.eval are the same file ('eval.txt')"};
  w = write(r, "warned");
  ASSERT_EQ(w.json.at("warnings").size(), 1u);
  EXPECT_NE(w.json.at("warnings")[0].get<std::string>().find("selection on the reported set"), std::string::npos);
  EXPECT_NE(w.md.find("**Warning: selection on the reported set"), std::string::npos) << w.md;
  EXPECT_LT(w.md.find("Warning"), w.md.find("| model |"));  // before the figures, where a reader starts

  r.held_out = {};
  w = write(r, "no_curve");
  EXPECT_TRUE(w.json.at("held_out").at("source").is_null());
  EXPECT_NE(w.md.find("no held-out perplexity"), std::string::npos);
}

}  // namespace
}  // namespace kd

namespace kd {
namespace {

// Teacher and student timed in turns: the speed-up is the median of per-round ratios, and the verdict
// follows its interval over rounds (met when all of it is above the target, within noise when it
// straddles the target).
TEST(LmReportTest, PairedRoundsGiveTheSpeedupItsInterval) {
  auto r = report(0.1, 3.8, 120.0);
  r.teacher.profile.decode_ms = {400, 410, 395, 405, 402};
  r.student.profile.decode_ms = {100, 101, 99, 100, 100};  // about 4.0x every round
  auto w = write(r, "paired_met");
  const auto& t = w.json.at("targets")[2];
  EXPECT_EQ(t.at("verdict"), "met");
  EXPECT_NEAR(t.at("measured").get<double>(), 4.0, 0.1);
  EXPECT_TRUE(t.contains("spread")) << t.dump();
  EXPECT_NEAR(w.json.at("figures").at("generate_speedup").get<double>(), t.at("measured").get<double>(), 1e-12);
  r.student.profile.decode_ms = {120, 160, 130, 150, 140};  // 2.6x to 3.4x: straddles 3
  w = write(r, "paired_noise");
  EXPECT_EQ(w.json.at("targets")[2].at("verdict"), "within noise") << w.json.at("targets")[2].dump();
}

}  // namespace
}  // namespace kd
