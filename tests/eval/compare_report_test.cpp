// kd compare's report from synthetic run data (no model, no training): the verdict against the
// reference run in each case, the table, the JSON, the chart, and the checks on the runs given.
#include "kd/eval/compare_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/xml_check.h"
#include "expect_error.h"
#include "kd/io/atomic_file.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

// Batch-1 passes of `ms` each with a little round-to-round wobble, `rounds` rounds.
ModelProfile timed(double ms, int64_t params, double flops, double throughput, int rounds = 20) {
  ModelProfile p;
  p.parameters = params;
  p.flops_per_example = flops;
  p.mean_tokens = 24.5;
  p.throughput_b64 = throughput;
  p.threads = 2;
  p.warmup = 20;
  p.warmup_seconds = 1;
  p.repeats = rounds;
  for (int r = 0; r < rounds; ++r) {
    p.b1_ms.push_back(ms * (1 + 0.01 * (r % 3)));
    p.b64_ms.push_back(64000 / throughput * (1 + 0.01 * (r % 2)));
  }
  p.latency_ms_b1 = median(p.b1_ms);
  p.latency_ms_b1_p90 = percentile(p.b1_ms, 0.9);
  return p;
}

ReportModel student(const std::string& name, const std::string& type, std::vector<double> accuracy, double ms) {
  ReportModel m;
  m.name = name;
  m.type = type;
  m.seeds = {1, 2, 3};
  m.accuracy = std::move(accuracy);
  m.profile = timed(ms, 4'000'000, 1e8, 64000 / (ms * 4));
  return m;
}

CompareRun run(const std::string& name, std::vector<double> distilled, double distilled_ms,
               std::vector<double> baseline, double baseline_ms, const std::string& type = "bilstm") {
  CompareRun r;
  r.dir = "runs/" + name;
  r.name = name;
  r.teacher_dir = "runs/sst2-teacher/best";
  r.test_file = "dev.tsv";
  r.teacher_accuracy = 0.8853;
  r.student_dir = r.dir + "/student";
  r.baseline_dir = r.dir + "/seed-1/baseline/best";
  r.distilled = student("distilled student", type, std::move(distilled), distilled_ms);
  r.baseline = student("baseline student", type, std::move(baseline), baseline_ms);
  return r;
}

CompareReport sample() {
  CompareReport c;
  c.date = "2026-12-07T10:00:00Z";
  c.cpu = "Test CPU @ 2.80GHz";
  c.threads = 2;
  c.teacher_dir = "runs/sst2-teacher/best";
  c.test_file = "dev.tsv";
  c.teacher.name = "teacher";
  c.teacher.type = "bert";
  c.teacher.accuracy = {0.8853};
  c.teacher.profile = timed(10, 22'700'000, 2e9, 300);
  c.runs.push_back(run("sst2-distill", {0.8589, 0.8578, 0.8555}, 1.0, {0.8291, 0.8314, 0.8463}, 0.8));
  c.runs.push_back(run("sst2-distill-bert", {0.8819, 0.8704, 0.8830}, 4.0, {0.8727, 0.8773, 0.8807}, 4.0, "bert"));
  c.reference = 0;
  return c;
}

TEST(CompareReportTest, MoreAccurateAtNoMoreLatencyDominates) {
  const ReportModel ref = student("distilled student", "bilstm", {0.85, 0.86, 0.87}, 2.0);
  const ReportModel cand = student("distilled student", "bilstm", {0.88, 0.88, 0.89}, 1.0);
  const StudentVerdict v = compare_students("b", cand, "a", ref);
  ASSERT_TRUE(v.measured);
  EXPECT_TRUE(v.more_accurate);
  EXPECT_TRUE(v.no_slower);
  EXPECT_TRUE(v.dominates());
  EXPECT_NEAR(v.accuracy_gap, 0.0233333, 1e-6);
  EXPECT_NEAR(v.latency_ratio.median, 0.5, 0.01);
  EXPECT_NE(v.sentence.find("b's distilled student is 2.33 points more accurate than a's"), std::string::npos)
      << v.sentence;
  EXPECT_NE(v.sentence.find("at no more batch-1 latency (0.50× a's latency, 95% interval"), std::string::npos)
      << v.sentence;
  // 2 × the larger std (1.0 points) is 2.0 points, and the gain of 2.33 points is beyond it.
  EXPECT_NE(v.sentence.find("beyond seed noise, 2 × the larger std: 2.00 points"), std::string::npos) << v.sentence;
}

TEST(CompareReportTest, MoreAccurateButLaggingSaysHowManyTimesTheLatency) {
  const CompareReport c = sample();
  const auto vs = c.verdicts();
  ASSERT_EQ(vs.size(), 1u);  // every run but the reference
  const StudentVerdict& v = vs[0];
  EXPECT_EQ(v.run, "sst2-distill-bert");
  EXPECT_EQ(v.reference, "sst2-distill");
  EXPECT_TRUE(v.more_accurate);
  EXPECT_FALSE(v.no_slower);
  EXPECT_FALSE(v.dominates());
  EXPECT_NEAR(v.latency_ratio.median, 4.0, 0.05);
  EXPECT_NE(v.sentence.find("is 2.10 points more accurate than sst2-distill's (87.84 ± 0.70% vs 85.74 ± 0.17%; "
                            "beyond seed noise"),
            std::string::npos)
      << v.sentence;
  EXPECT_NE(v.sentence.find("but 4.00× slower at batch 1"), std::string::npos) << v.sentence;
}

TEST(CompareReportTest, LessAccurateSaysByHowMuchAndWhetherItLags) {
  const ReportModel ref = student("distilled student", "bilstm", {0.86, 0.87, 0.88}, 1.0);
  const StudentVerdict faster =
      compare_students("c", student("distilled student", "textcnn", {0.85, 0.85, 0.86}, 0.5), "a", ref);
  EXPECT_FALSE(faster.more_accurate);
  EXPECT_TRUE(faster.no_slower);
  EXPECT_NE(faster.sentence.find("c's distilled student falls 1.67 points short of a's accuracy"), std::string::npos)
      << faster.sentence;
  EXPECT_NE(faster.sentence.find("within seed noise, 2 × the larger std: 2.00 points"), std::string::npos)
      << faster.sentence;
  EXPECT_NE(faster.sentence.find("at no more batch-1 latency (0.50×"), std::string::npos) << faster.sentence;

  const StudentVerdict slower =
      compare_students("d", student("distilled student", "bert", {0.80, 0.80, 0.80}, 3.0), "a", ref);
  EXPECT_FALSE(slower.more_accurate);
  EXPECT_FALSE(slower.no_slower);
  EXPECT_NE(slower.sentence.find("falls 7.00 points short of a's accuracy"), std::string::npos) << slower.sentence;
  EXPECT_NE(slower.sentence.find("and is 3.00× slower at batch 1"), std::string::npos) << slower.sentence;

  const StudentVerdict same = compare_students("e", ref, "a", ref);
  EXPECT_FALSE(same.more_accurate);
  EXPECT_TRUE(same.no_slower);
  EXPECT_NE(same.sentence.find("is exactly as accurate as a's"), std::string::npos) << same.sentence;
}

TEST(CompareReportTest, UnmeasuredFiguresGiveNoVerdict) {
  ReportModel ref = student("distilled student", "bilstm", {0.86}, 1.0);
  ReportModel cand = student("distilled student", "bilstm", {0.87}, 1.0);
  cand.profile = ModelProfile{};  // never timed
  const StudentVerdict v = compare_students("b", cand, "a", ref);
  EXPECT_FALSE(v.measured);
  EXPECT_FALSE(v.dominates());
  EXPECT_NE(v.sentence.find("cannot be compared"), std::string::npos) << v.sentence;
  // One seed each: no noise estimate, and the sentence does not pretend one.
  ref.profile = cand.profile = timed(1.0, 1, 1, 100);
  const StudentVerdict one_seed = compare_students("b", cand, "a", ref);
  EXPECT_TRUE(std::isnan(one_seed.noise));
  EXPECT_EQ(one_seed.sentence.find("noise"), std::string::npos) << one_seed.sentence;
  EXPECT_NE(one_seed.sentence.find("(87.00% vs 86.00%)"), std::string::npos) << one_seed.sentence;
}

TEST(CompareReportTest, MarkdownHasOneTableRowPerModelAndTheVerdicts) {
  const CompareReport c = sample();
  const std::string md = c.to_markdown();
  for (const char* column : {"| model | run | architecture | parameters | FLOPs per example (non-embedding) | "
                             "test accuracy | retention | latency, batch 1 (median, p90) | speed-up at batch 1 vs "
                             "teacher (95% interval) | throughput, batch 64 |"})
    EXPECT_NE(md.find(column), std::string::npos) << md;
  EXPECT_NE(md.find("| teacher | — | bert | 22.70 M | 2.00 GFLOP | 88.53% | — | 10.10 ms (p90 10.20) | — |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| distilled student | sst2-distill | bilstm | 4.00 M | 100.00 MFLOP | 85.74 ± 0.17% (3 seeds) | "
                    "96.85% | 1.01 ms (p90 1.02) | 10.0× ("),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| baseline student (α = 0) | sst2-distill-bert | bert |"), std::string::npos) << md;
  for (const char* row : {"\n| distilled student | ", "\n| baseline student (α = 0) | "}) {
    size_t rows = 0;
    for (size_t p = md.find(row); p != std::string::npos; p = md.find(row, p + 1)) ++rows;
    EXPECT_EQ(rows, 2u) << row << ": one per run";
  }
  EXPECT_NE(md.find("## Against the reference: sst2-distill\n\n- sst2-distill-bert's distilled student is 2.10 points"),
            std::string::npos)
      << md;
  for (const char* said : {"2026-12-07T10:00:00Z", "Test CPU @ 2.80GHz", "with 2 threads", "runs/sst2-teacher/best",
                           "`dev.tsv`", "(accuracy_vs_latency.svg)", "`runs/sst2-distill/seed-1/baseline/best`"})
    EXPECT_NE(md.find(said), std::string::npos) << said << "\n" << md;

  CompareReport no_reference = c;
  no_reference.reference = -1;
  EXPECT_TRUE(no_reference.verdicts().empty());
  EXPECT_EQ(no_reference.to_markdown().find("Against the reference"), std::string::npos);
}

TEST(CompareReportTest, JsonAndChartCarryEveryModel) {
  const CompareReport c = sample();
  const nlohmann::json j = finite_json(c.to_json());
  EXPECT_EQ(j.at("reference"), "sst2-distill");
  ASSERT_EQ(j.at("runs").size(), 2u);
  EXPECT_NEAR(j.at("runs")[1].at("distilled").at("accuracy_mean").get<double>(), 0.8784333, 1e-6);
  EXPECT_NEAR(j.at("runs")[0].at("distilled").at("speedup_b1").at("median").get<double>(), 10.0, 0.1);
  EXPECT_EQ(j.at("runs")[0].at("distilled").at("profile").at("b1_ms").size(), 20u);
  EXPECT_FALSE(j.at("runs")[0].at("distilled").contains("histories"));
  ASSERT_EQ(j.at("verdicts").size(), 1u);
  EXPECT_EQ(j.at("verdicts")[0].at("more_accurate"), true);
  EXPECT_EQ(j.at("verdicts")[0].at("no_slower"), false);
  EXPECT_EQ(j.at("cpu"), "Test CPU @ 2.80GHz");

  const std::string svg = compare_svg(c);
  EXPECT_TRUE(test::xml_balanced(svg));
  size_t markers = 0;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++markers;
  EXPECT_EQ(markers, 5u) << "teacher and two students per run";
  EXPECT_NE(svg.find("sst2-distill-bert: baseline"), std::string::npos);

  const auto dir = test::temp_dir("compare_report");
  write_compare((dir / "out").string(), c);
  for (const char* f : {"compare.json", "compare.md", "accuracy_vs_latency.svg", "accuracy_vs_latency.png"})
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  EXPECT_EQ(read_file((dir / "out/compare.md").string()), c.to_markdown());
}

TEST(CompareReportTest, RunsOfAnotherTeacherOrTestFileAreRefused) {
  const CompareReport c = sample();
  std::vector<CompareRun> runs = c.runs;
  EXPECT_NO_THROW(check_comparable(runs));
  runs[1].teacher_dir = "runs/other-teacher/best";
  test::expect_error<ConfigError>([&] { check_comparable(runs); },
                                  {"runs/sst2-distill-bert", "runs/other-teacher/best", "runs/sst2-teacher/best"});
  runs = c.runs;
  runs[1].test_file = "test.tsv";
  test::expect_error<ConfigError>([&] { check_comparable(runs); }, {"runs/sst2-distill-bert", "test.tsv", "dev.tsv"});
  runs = c.runs;
  runs[1].dir = "runs/../runs/sst2-distill";
  test::expect_error<ConfigError>([&] { check_comparable(runs); }, {"given twice"});
  test::expect_error<ConfigError>([&] { check_comparable({}); }, {"--runs"});
}

TEST(CompareReportTest, MissingRunFolderOrReportIsAnIoErrorNamingThePath) {
  const auto dir = test::temp_dir("compare_read");
  test::expect_error<IoError>([&] { read_compare_run((dir / "nowhere").string()); }, {"nowhere", "no such run folder"});
  fs::create_directories(dir / "empty-run");
  test::expect_error<IoError>([&] { read_compare_run((dir / "empty-run").string()); }, {"empty-run/report.json"});
  std::ofstream(dir / "empty-run/report.json") << R"({"settings": {}, "test_file": "dev.tsv"})";
  test::expect_error<FormatError>([&] { read_compare_run((dir / "empty-run").string()); }, {"teacher"});
}

}  // namespace
}  // namespace kd
