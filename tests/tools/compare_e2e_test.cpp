// End to end through the `kd` binary: kd compare on two small run folders laid out as kd distill leaves
// them (report.json, config.yaml, student/, seed-1/baseline/best/; a tiny BERT teacher, BiLSTM students
// in one run and 1-layer BERT students in the other), and its bad-input cases. No training: the accuracies
// are the runs' recorded ones, and the plumbing and the measurement are under test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kd/io/atomic_file.h"
#include "kd/io/config.h"
#include "kd/models/student_registry.h"
#include "models/tiny_bert.h"
#include "test_paths.h"
#include "tools/run_kd.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

void save(const TextClassifier& model, const fs::path& dir) {
  fs::create_directories(dir);
  model.save(dir.string());
}

// A finished run folder: a student and a first-seed baseline of `student_yaml`, the report and config.
void write_run(const fs::path& run, const TextClassifier& teacher, const std::string& student_yaml,
               const std::string& teacher_dir, const std::vector<double>& distilled,
               const std::vector<double>& baseline) {
  for (const char* part : {"student", "seed-1/baseline/best"}) {
    Config c = Config::from_string(student_yaml, "student.yaml");
    save(*make_student(c.root().child("student"), teacher), run / part);
  }
  const auto type = Config::from_string(student_yaml).root().child("student").get<std::string>("type", "");
  const nlohmann::json report = {
      {"test_file", test::shared_data("sst2/dev.tsv")},
      {"settings", {{"teacher", teacher_dir}, {"seeds", {1, 2}}}},
      {"teacher", {{"name", "teacher"}, {"type", "bert"}, {"accuracy", {0.5}}}},
      {"distilled", {{"name", "distilled student"}, {"type", type}, {"seeds", {1, 2}}, {"accuracy", distilled}}},
      {"baseline", {{"name", "baseline student"}, {"type", type}, {"seeds", {1, 2}}, {"accuracy", baseline}}}};
  write_json_atomic((run / "report.json").string(), report);
  std::ofstream(run / "config.yaml") << "run_dir: " << run.filename().string()
                                     << "\ndata: {train: train.tsv, test: " << test::shared_data("sst2/dev.tsv")
                                     << ", text: sentence, label: label}\n";
}

class CompareE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("e2e_compare");
    auto teacher = test::tiny_bert(2, 32, 2, 3, {"0", "1"});  // max_length 20
    save(*teacher, dir_ / "teacher");
    write_run(dir_ / "lstm", *teacher, "student: {type: bilstm, embedding_dim: 16, hidden: 8}", "teacher", {0.80, 0.82},
              {0.78, 0.79});
    write_run(dir_ / "small-bert", *teacher, "student: {type: bert, layers: 1}", "teacher", {0.84, 0.85}, {0.83, 0.83});
    // This run's student reads at most 12 tokens a row: kd compare must tokenize the rows for it anew.
    auto kd_json = read_json((dir_ / "small-bert/student/kd.json").string());
    kd_json["max_length"] = 12;
    write_json_atomic((dir_ / "small-bert/student/kd.json").string(), kd_json);
    first_ = test::run_kd(
        "compare --runs lstm small-bert --reference lstm --out cmp --latency-repeats 4 "
        "--latency-warmup 1 --latency-warmup-seconds 0",
        dir_);
  }
  static fs::path dir_;
  static test::RunResult first_;
};
fs::path CompareE2ETest::dir_;
test::RunResult CompareE2ETest::first_;

TEST_F(CompareE2ETest, WritesTheTableTheChartAndTheVerdict) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  for (const char* f : {"compare.json", "compare.md", "accuracy_vs_latency.svg", "accuracy_vs_latency.png"})
    EXPECT_TRUE(fs::exists(dir_ / "cmp" / f)) << f;
  const auto j = read_json((dir_ / "cmp/compare.json").string());
  EXPECT_EQ(j.at("reference"), "lstm");
  ASSERT_EQ(j.at("runs").size(), 2u);
  EXPECT_EQ(j.at("runs")[1].at("distilled").at("type"), "bert");
  EXPECT_NEAR(j.at("runs")[1].at("distilled").at("accuracy_mean").get<double>(), 0.845, 1e-9);
  EXPECT_NEAR(j.at("runs")[1].at("distilled").at("retention").get<double>(), 1.69, 1e-9);
  // Every model was timed in the same rounds, and the speed-ups pair them round by round.
  for (const auto& run : j.at("runs"))
    for (const char* m : {"distilled", "baseline"}) {
      EXPECT_EQ(run.at(m).at("profile").at("b1_ms").size(), 4u);
      EXPECT_EQ(run.at(m).at("speedup_b1").at("rounds"), 4);
    }
  EXPECT_EQ(j.at("teacher").at("profile").at("b1_ms").size(), 4u);
  ASSERT_EQ(j.at("verdicts").size(), 1u);
  EXPECT_EQ(j.at("verdicts")[0].at("run"), "small-bert");
  EXPECT_EQ(j.at("verdicts")[0].at("more_accurate"), true);

  const std::string md = read_file((dir_ / "cmp/compare.md").string());
  EXPECT_NE(md.find("| distilled student | small-bert | bert |"), std::string::npos) << md;
  EXPECT_NE(md.find("| baseline student (α = 0) | lstm | bilstm |"), std::string::npos) << md;
  EXPECT_NE(md.find("- small-bert's distilled student is 3.50 points more accurate than lstm's"), std::string::npos)
      << md;
  EXPECT_NE(md.find("with 1 threads"), std::string::npos) << md;
  EXPECT_NE(first_.out.find("## Against the reference: lstm"), std::string::npos) << "the report is printed";
}

TEST_F(CompareE2ETest, EachModelReadsTheRowsThroughItsOwnTokenizer) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  const auto j = read_json((dir_ / "cmp/compare.json").string());
  const double teacher_tokens = j.at("teacher").at("profile").at("mean_tokens").get<double>();
  const double student_tokens = j.at("runs")[1].at("distilled").at("profile").at("mean_tokens").get<double>();
  EXPECT_LE(teacher_tokens, 20);
  EXPECT_GT(teacher_tokens, 12.5);  // SST-2 dev sentences are mostly longer than 12 word pieces
  EXPECT_LE(student_tokens, 12);
  EXPECT_EQ(j.at("runs")[0].at("distilled").at("profile").at("mean_tokens").get<double>(), teacher_tokens);
}

TEST_F(CompareE2ETest, BadRunsAreOneLineErrorsAndWriteNothing) {
  // A run of another teacher: refused before any model is loaded, naming the run and both teachers.
  fs::create_directories(dir_ / "other");
  for (const char* f : {"config.yaml", "report.json"}) fs::copy_file(dir_ / "lstm" / f, dir_ / "other" / f);
  fs::create_directories(dir_ / "other/student");
  fs::create_directories(dir_ / "other/seed-1/baseline/best");
  auto report = read_json((dir_ / "other/report.json").string());
  report["settings"]["teacher"] = "another-teacher";
  write_json_atomic((dir_ / "other/report.json").string(), report);
  auto r = test::run_kd("compare --runs lstm other --out bad", dir_);
  EXPECT_EQ(r.code, 2) << r.err;
  const auto line = r.err.substr(r.err.rfind("kd: error:"));
  EXPECT_EQ(line.find('\n'), line.size() - 1) << r.err;
  for (const char* part : {"other", "another-teacher", "lstm's teacher teacher"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " not in " << line;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));

  r = test::run_kd("compare --runs lstm no-such-run --out bad", dir_);
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("kd: error: no-such-run: no such run folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));

  r = test::run_kd("compare --runs lstm small-bert --reference other --out bad", dir_);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--reference other"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

}  // namespace
}  // namespace kd
