#include "kd/eval/distill_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "eval/xml_check.h"
#include "kd/io/atomic_file.h"
#include "test_paths.h"

namespace kd {
namespace {

std::vector<EvalRecord> history(double start_acc, double train_loss) {
  std::vector<EvalRecord> h;
  for (int e = 1; e <= 3; ++e) {
    EvalRecord r;
    r.step = 100 * e;
    r.epoch = e;
    r.accuracy = start_acc + 0.01 * e;
    r.macro_f1 = r.accuracy - 0.005;
    r.loss = 0.5 - 0.05 * e;
    r.train_loss = train_loss / e;
    h.push_back(r);
  }
  return h;
}

ModelProfile profile(int64_t params, int64_t bytes, double flops, double ms, double throughput) {
  ModelProfile p;
  p.parameters = params;
  p.disk_bytes = bytes;
  p.flops_per_example = flops;
  p.mean_tokens = 24.5;
  p.latency_ms_b1 = ms;
  p.latency_ms_b1_p90 = ms * 1.2;
  p.throughput_b64 = throughput;
  p.threads = 2;
  p.warmup = 3;
  p.repeats = 20;
  return p;
}

DistillReport sample_report() {
  DistillReport r;
  r.dataset = "sst2";
  r.valid_file = "../shared/data/sst2/dev.tsv";
  r.cpu = "Test CPU @ 2.80GHz";
  r.date = "2026-11-28T12:00:00Z";
  r.threads = 2;
  r.settings = {{"temperature", 4.0}, {"alpha", 0.5}, {"soft_loss", "kl"}, {"seeds", {13, 14, 15}}};
  r.teacher = {"teacher", "bert", {}, {0.90}, {0.89}, {}, profile(22'700'000, 90'000'000, 2e9, 20, 100), {}};
  r.distilled = {"distilled student", "bilstm", {13, 14, 15}, {0.86, 0.87, 0.88}, {0.855, 0.865, 0.875}, {},
                 profile(1'000'000, 4'000'000, 1e8, 2, 2000), {}};
  r.baseline = {"baseline student", "bilstm", {13, 14, 15}, {0.83, 0.84, 0.85}, {0.82, 0.83, 0.84}, {},
                profile(1'000'000, 4'000'000, 1e8, 2.5, 1600), {}};
  for (int s = 0; s < 3; ++s) {
    r.distilled.histories.push_back(history(0.84 + 0.01 * s, 1.2));
    r.baseline.histories.push_back(history(0.81 + 0.01 * s, 0.6));
  }
  return r;
}

TEST(DistillReportTest, DerivedFigures) {
  const ReportFigures f = sample_report().figures();
  EXPECT_NEAR(f.retention_distilled, 0.87 / 0.90, 1e-12);
  EXPECT_NEAR(f.retention_baseline, 0.84 / 0.90, 1e-12);
  EXPECT_NEAR(f.gain, 0.03, 1e-12);
  EXPECT_NEAR(f.distilled_std, 0.01, 1e-12);
  EXPECT_NEAR(f.gain_noise, 0.02, 1e-12);
  ASSERT_TRUE(f.gain_beyond_noise.has_value());
  EXPECT_TRUE(*f.gain_beyond_noise);
  // Profiles without per-round times: the ratio of the medians, no interval.
  EXPECT_NEAR(f.speedup_b1.median, 10, 1e-12);
  EXPECT_TRUE(std::isnan(f.speedup_b1.low));
  EXPECT_NEAR(f.baseline_speedup_b1.median, 8, 1e-12);
  EXPECT_NEAR(f.throughput_ratio_b64.median, 20, 1e-12);
  EXPECT_NEAR(f.compression_disk, 22.5, 1e-12);
  EXPECT_NEAR(f.compression_params, 22.7, 1e-12);
  EXPECT_NEAR(f.flops_ratio, 20, 1e-12);
}

TEST(DistillReportTest, GainWithinNoiseIsReportedPlainly) {
  DistillReport r = sample_report();
  r.distilled.accuracy = {0.84, 0.87, 0.90};  // std 0.03: the 0.03 gain is inside 2 × std
  const ReportFigures f = r.figures();
  ASSERT_TRUE(f.gain_beyond_noise.has_value());
  EXPECT_FALSE(*f.gain_beyond_noise);
  EXPECT_NE(r.to_markdown().find("does NOT beat the baseline"), std::string::npos);
}

TEST(DistillReportTest, MarkdownAndTableHoldTheRows) {
  const DistillReport r = sample_report();
  const std::string md = r.to_markdown();
  EXPECT_NE(md.find("| | teacher | distilled student | baseline student (α = 0) |"), std::string::npos);
  EXPECT_NE(md.find("| test accuracy | 90.00% | 87.00 ± 1.00% (3 seeds) | 84.00 ± 1.00% (3 seeds) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| retention (accuracy / teacher's) | — | 96.67% | 93.33% |"), std::string::npos);
  EXPECT_NE(md.find("| speed-up at batch 1 (95% interval) | — | 10.0× | 8.0× |"), std::string::npos) << md;
  EXPECT_NE(md.find("| compression on disk | — | 22.5× | 22.5× |"), std::string::npos);
  EXPECT_NE(md.find("| parameters | 22.70 M | 1.00 M | 1.00 M |"), std::string::npos);
  EXPECT_NE(md.find("+3.00 points"), std::string::npos);
  EXPECT_NE(md.find("beats the baseline by a margin larger than run-to-run noise"), std::string::npos);
  EXPECT_NE(md.find("(curves.svg)"), std::string::npos);
  EXPECT_NE(md.find("(accuracy_vs_latency.svg)"), std::string::npos);
  EXPECT_NE(md.find("| seed 14 | 87.00% | 86.50% | n/a | 84.00% | 83.00% | n/a |"), std::string::npos) << md;
  EXPECT_NE(md.find("Test CPU @ 2.80GHz with 2 threads"), std::string::npos);

  // Console table: every row of the comparison has the same display width.
  const std::string table = r.to_table();
  std::istringstream in(table);
  std::string line;
  std::getline(in, line);  // title
  std::vector<size_t> widths;
  while (std::getline(in, line) && line.rfind("Gain", 0) != 0) {
    size_t w = 0;
    for (unsigned char c : line) w += (c & 0xC0) != 0x80;
    widths.push_back(w);
  }
  ASSERT_GE(widths.size(), 15u);
  for (size_t w : widths) EXPECT_EQ(w, widths[0]) << table;
  EXPECT_NE(table.find("10.0×"), std::string::npos);
}

TEST(DistillReportTest, JsonHasTheKeys) {
  const nlohmann::json j = sample_report().to_json();
  for (const char* k : {"dataset", "valid_file", "cpu", "date", "threads", "settings", "teacher", "distilled",
                        "baseline", "figures"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_NEAR(j["figures"]["retention"]["distilled"].get<double>(), 0.87 / 0.9, 1e-12);
  EXPECT_TRUE(j["figures"]["gain"]["beyond_noise"].get<bool>());
  EXPECT_NEAR(j["figures"]["speedup_b1"]["distilled"]["median"].get<double>(), 10, 1e-12);
  EXPECT_NEAR(j["distilled"]["accuracy_mean"].get<double>(), 0.87, 1e-12);
  EXPECT_EQ(j["distilled"]["histories"].size(), 3u);
  EXPECT_EQ(j["distilled"]["histories"][0].size(), 3u);
  EXPECT_EQ(j["teacher"]["profile"]["parameters"].get<int64_t>(), 22'700'000);
  EXPECT_EQ(j["settings"]["soft_loss"], "kl");
}

TEST(DistillReportTest, WritesAllFilesWellFormed) {
  const auto dir = test::temp_dir("distill_report") / "run";  // created by write_report
  const DistillReport r = sample_report();
  write_report(dir.string(), r);
  for (const char* f : {"report.json", "report.md", "curves.svg", "accuracy_vs_latency.svg"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  EXPECT_EQ(read_json((dir / "report.json").string()), r.to_json());
  EXPECT_TRUE(test::xml_file_well_formed(dir / "curves.svg"));
  EXPECT_TRUE(test::xml_file_well_formed(dir / "accuracy_vs_latency.svg"));
  const std::string curves = read_file((dir / "curves.svg").string());
  EXPECT_NE(curves.find("distilled student, seed 13"), std::string::npos);
  EXPECT_NE(curves.find("baseline student, seed 15"), std::string::npos);
  EXPECT_NE(curves.find("Training loss"), std::string::npos);
  const std::string scatter = read_file((dir / "accuracy_vs_latency.svg").string());
  EXPECT_NE(scatter.find("teacher 90.00%"), std::string::npos);
}

TEST(DistillReportTest, ZeroLatencyAndEmptyHistoriesGiveNullsNotNaN) {
  DistillReport r = sample_report();
  r.teacher.profile = ModelProfile{};  // nothing measured: zeros everywhere
  r.distilled.profile.latency_ms_b1 = 0;
  r.distilled.profile.throughput_b64 = NAN;
  r.distilled.histories.clear();
  r.distilled.accuracy = {0.87};  // one seed: noise unknown
  r.distilled.macro_f1 = {0.86};
  r.baseline = ReportModel{};
  r.baseline.name = "baseline student";
  r.settings["lr"] = NAN;
  const ReportFigures f = r.figures();
  EXPECT_TRUE(std::isnan(f.speedup_b1.median));
  EXPECT_TRUE(std::isnan(f.compression_disk));  // the teacher's size was not measured
  EXPECT_TRUE(std::isnan(f.retention_baseline));
  EXPECT_FALSE(f.gain_beyond_noise.has_value());

  const nlohmann::json j = r.to_json();
  const std::string text = j.dump();
  for (const char* bad : {"NaN", "nan", "Infinity", "inf"}) EXPECT_EQ(text.find(bad), std::string::npos) << bad;
  EXPECT_TRUE(j["figures"]["speedup_b1"]["distilled"]["median"].is_null());
  EXPECT_TRUE(j["figures"]["gain"]["beyond_noise"].is_null());
  EXPECT_TRUE(j["baseline"]["accuracy_mean"].is_null());
  EXPECT_TRUE(j["settings"]["lr"].is_null());

  const std::string md = r.to_markdown();
  EXPECT_EQ(md.find("nan"), std::string::npos);
  EXPECT_NE(md.find("Gain from distillation: n/a"), std::string::npos);  // no baseline result
  EXPECT_NE(r.to_table().find("n/a"), std::string::npos);

  DistillReport one_seed = r;
  one_seed.baseline.accuracy = {0.84};
  EXPECT_NE(one_seed.to_markdown().find("larger than noise is not known"), std::string::npos);

  const auto dir = test::temp_dir("distill_report_edge");
  write_report(dir.string(), r);
  EXPECT_TRUE(test::xml_file_well_formed(dir / "curves.svg"));
  EXPECT_TRUE(test::xml_file_well_formed(dir / "accuracy_vs_latency.svg"));
}

// Per-round times: teacher 20 ms and student 2 ms each round, with the student's round times jittered.
void add_rounds(DistillReport& r, double teacher_ms, double student_ms, double jitter, int rounds = 50) {
  r.teacher.profile.b1_ms.clear();
  r.distilled.profile.b1_ms.clear();
  r.teacher.profile.b64_ms.clear();
  r.distilled.profile.b64_ms.clear();
  for (int i = 0; i < rounds; ++i) {
    const double wobble = 1 + jitter * (((i * 37) % 11) / 5.0 - 1);  // in [1 - jitter, 1 + jitter]
    r.teacher.profile.b1_ms.push_back(teacher_ms);
    r.distilled.profile.b1_ms.push_back(student_ms * wobble);
    r.teacher.profile.b64_ms.push_back(64 * teacher_ms);
    r.distilled.profile.b64_ms.push_back(64 * student_ms * wobble);
  }
}

TEST(DistillReportTest, SpeedUpIsTheMedianOfPerRoundRatiosWithAnInterval) {
  DistillReport r = sample_report();
  add_rounds(r, 20, 2, 0.2);
  const RatioEstimate e = r.figures().speedup_b1;
  EXPECT_EQ(e.rounds, 50);
  EXPECT_NEAR(e.median, 10, 0.5);
  EXPECT_LE(e.low, e.median);
  EXPECT_GE(e.high, e.median);
  EXPECT_LT(e.low, e.high);
  EXPECT_NEAR(e.min, 20 / (2 * 1.2), 1e-9);
  EXPECT_NEAR(e.max, 20 / (2 * 0.8), 1e-9);
  // A round where the machine stalled both models cancels in the ratio: the median ratio stays 10.
  DistillReport stalled = sample_report();
  add_rounds(stalled, 20, 2, 0.0);
  stalled.teacher.profile.b1_ms[7] *= 5;
  stalled.distilled.profile.b1_ms[7] *= 5;
  EXPECT_DOUBLE_EQ(stalled.figures().speedup_b1.median, 10);
  EXPECT_DOUBLE_EQ(stalled.figures().speedup_b1.low, 10);
}

TEST(DistillReportTest, DeclaredTargetsAreJudgedMetNotMetAndWithinNoise) {
  DistillReport r = sample_report();  // retention 0.9667, gain +3 vs noise 2, disk 22.5x
  add_rounds(r, 20, 2, 0.2);          // speed-up 10x, interval around it
  r.targets = {{"retention", 0.96}, {"size_ratio", 30}, {"speedup_b1", 10}, {"speedup_b1", 5},
               {"speedup_b1", 20}, {"gain_beyond_noise", 1}};
  const auto results = r.target_results();
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ(results[0].verdict, Verdict::kMet);      // 0.9667 >= 0.96
  EXPECT_EQ(results[1].verdict, Verdict::kNotMet);   // 22.5 < 30
  EXPECT_EQ(results[2].verdict, Verdict::kWithinNoise);  // 10 inside its interval
  EXPECT_EQ(results[3].verdict, Verdict::kMet);      // the whole interval above 5
  EXPECT_EQ(results[4].verdict, Verdict::kNotMet);   // the whole interval below 20
  EXPECT_EQ(results[5].verdict, Verdict::kMet);      // +3 points against noise 2

  const nlohmann::json j = r.to_json();
  ASSERT_EQ(j["targets"].size(), 6u);
  EXPECT_EQ(j["targets"][0]["key"], "retention");
  EXPECT_EQ(j["targets"][0]["verdict"], "met");
  EXPECT_NEAR(j["targets"][0]["measured"].get<double>(), 0.87 / 0.9, 1e-12);
  EXPECT_EQ(j["targets"][1]["verdict"], "not met");
  EXPECT_EQ(j["targets"][2]["verdict"], "within noise");
  EXPECT_EQ(j["targets"][2]["spread"].size(), 2u);
  EXPECT_EQ(j["targets"][5]["measured"], true);
  const std::string md = r.to_markdown();
  EXPECT_NE(md.find("## Targets"), std::string::npos);
  EXPECT_NE(md.find("| ≥ 0.96 | 0.9667 | **met** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| ≥ 30 | 22.5 | **not met** |"), std::string::npos) << md;
  EXPECT_NE(md.find("**within noise**"), std::string::npos);
  EXPECT_NE(r.to_table().find("target retention: 0.9667 → met"), std::string::npos) << r.to_table();

  // The same report with a gain inside the noise, and one seed each: missed, then not measured.
  DistillReport noisy = r;
  noisy.distilled.accuracy = {0.84, 0.87, 0.90};
  EXPECT_EQ(noisy.target_results()[5].verdict, Verdict::kNotMet);
  noisy.distilled.accuracy = {0.87};
  EXPECT_EQ(noisy.target_results()[5].verdict, Verdict::kNotMeasured);
  EXPECT_EQ(noisy.to_json()["targets"][5]["verdict"], "not measured");
}

TEST(DistillReportTest, WarningsAndSetsAreInTheReport) {
  DistillReport r = sample_report();
  r.test_file = "dev.tsv";
  r.valid_file = "train.tsv (validation slice: 2000 rows, seed 13)";
  r.warnings = {"selection on the reported set: data.test and data.valid are the same file (dev.tsv)"};
  const std::string md = r.to_markdown();
  EXPECT_NE(md.find("Figures on `dev.tsv`, measured once with the checkpoints chosen on `train.tsv (validation slice"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("**Warning: selection on the reported set"), std::string::npos);
  EXPECT_EQ(r.to_json()["warnings"].size(), 1u);
  EXPECT_NE(r.to_table().find("warning: selection on the reported set"), std::string::npos);
}

TEST(DistillReportTest, MeanStdAndMachineInfo) {
  EXPECT_TRUE(std::isnan(mean_of({})));
  EXPECT_DOUBLE_EQ(std_of({0.5}), 0);
  EXPECT_NEAR(std_of({1, 2, 3, 4}), std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_FALSE(cpu_model_name().empty());
  EXPECT_TRUE(std::regex_match(utc_now_iso(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
}

}  // namespace
}  // namespace kd
