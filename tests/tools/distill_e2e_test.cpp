// End to end through the `kd` binary: distill (cached and live knowledge, students and baselines over
// two seeds, report), resume, eval and predict on the result, and distill's bad-input cases (one error
// line, non-zero exit, no report). The teacher is the real pretrained encoder with an untrained head:
// the plumbing is under test here, not accuracy (that is the README's main command).
#include <gtest/gtest.h>
#include <signal.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <torch/cuda.h>

#include "kd/io/atomic_file.h"
#include "kd/models/bert_text_classifier.h"
#include "test_paths.h"
#include "tools/hf_agreement.h"
#include "tools/run_kd.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::error_lines;
using test::head_tsv;
using test::RunResult;

RunResult run_kd(const std::string& args, const fs::path& dir, const std::string& stdin_file = "",
                 const std::string& env = "") {
  return test::run_kd(args, dir, 1, stdin_file, env);
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// The pretrained encoder with a fresh head for labels 0/1, saved as a teacher folder; `shift` moves
// every weight a little, to make a different teacher.
void save_teacher(const fs::path& dir, double shift) {
  BertTextClassifierOptions o;
  o.path = test::model_dir();
  o.max_length = 32;
  auto teacher = BertTextClassifier::from_pretrained(o, LabelVocab({"0", "1"}));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : teacher->module().parameters()) p.add_(shift);
  }
  fs::create_directories(dir);
  teacher->save(dir.string());
}

// Data, teacher and a small distillation config in `dir`.
void write_setup(const fs::path& dir) {
  head_tsv(test::shared_data("sst2/train.tsv"), dir / "train.tsv", 160);
  head_tsv(test::shared_data("sst2/dev.tsv"), dir / "dev.tsv", 40);
  save_teacher(dir / "teacher", 0.0);
  std::ofstream cfg(dir / "distill.yaml");
  cfg << "run_dir: run\nteacher: teacher\n"
      << "data: {train: train.tsv, valid_fraction: 0.1, test: dev.tsv, text: sentence, label: label}\n"
      << "student: {type: bilstm, embedding_dim: 32, hidden: 24, init_embeddings: teacher}\n"
      << "distill: {temperature: 2.0, alpha: 0.5}\n"
      << "train: {epochs: 2, batch_size: 32, lr: 2.0e-3, checkpoint_every: 3}\n"
      << "report: {seeds: [1, 2], latency_repeats: 3, latency_warmup: 1}\n";
}

class DistillE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // ctest runs each test in its own process, possibly at the same time: one folder per process.
    dir_ = test::temp_dir("e2e_distill");
    write_setup(dir_);
    first_ = run_kd("distill --config distill.yaml", dir_);
  }
  static fs::path dir_;
  static RunResult first_;
};
fs::path DistillE2ETest::dir_;
RunResult DistillE2ETest::first_;

TEST_F(DistillE2ETest, WritesStudentsReportAndPlots) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  for (const char* f : {"run/config.yaml", "run/knowledge/train.safetensors", "run/teacher_eval.json",
                        "run/seed-1/distilled/result.json", "run/seed-2/baseline/result.json",
                        "run/student/model.safetensors", "run/student/kd.json", "run/report.json", "run/report.md",
                        "run/curves.svg", "run/accuracy_vs_latency.svg"})
    EXPECT_TRUE(fs::exists(dir_ / f)) << f;
  const auto report = read_json((dir_ / "run/report.json").string());
  EXPECT_TRUE(report.dump().find("retention") != std::string::npos) << report.dump(1);
  EXPECT_NE(first_.out.find("teacher"), std::string::npos) << "the report table is printed";
}

// The report's figures are what the saved models score: each seed's chosen checkpoint and the teacher,
// run again by `kd eval` on the test file, give the accuracies report.json recorded; the checkpoints and
// the deployable student were chosen on the held-out slice of train.tsv, which the report records.
TEST_F(DistillE2ETest, ReportedFiguresAreWhatTheSavedModelsScore) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  const auto report = read_json((dir_ / "run/report.json").string());
  auto eval_accuracy = [&](const std::string& model) {
    auto r = run_kd("eval --model " + model + " --data dev.tsv --batch-size 128 --out ev.json --log-level warn", dir_);
    EXPECT_EQ(r.code, 0) << r.err;
    return read_json((dir_ / "ev.json").string()).at("accuracy").get<double>();
  };
  EXPECT_EQ(report.at("test_file").get<std::string>(), "dev.tsv");
  EXPECT_EQ(report.at("data").at("holdout_row_ids").size(), 16u);  // 10% of 160 rows
  EXPECT_EQ(report.at("data").at("reported_rows").get<int64_t>(), 40);
  EXPECT_TRUE(report.at("warnings").empty()) << report.at("warnings").dump();
  EXPECT_DOUBLE_EQ(report.at("teacher").at("accuracy").at(0).get<double>(), eval_accuracy("teacher"));
  const std::vector<int> seeds = {1, 2};
  size_t best = 0;
  for (size_t i = 0; i < seeds.size(); ++i) {
    for (const std::string kind : {"distilled", "baseline"}) {
      SCOPED_TRACE(kind + " seed " + std::to_string(seeds[i]));
      const std::string part = "run/seed-" + std::to_string(seeds[i]) + "/" + kind;
      EXPECT_DOUBLE_EQ(report.at(kind).at("accuracy").at(i).get<double>(), eval_accuracy(part + "/best"));
      // The validation figure is the chosen checkpoint's, from the training history.
      const auto result = read_json((dir_ / part / "result.json").string());
      EXPECT_DOUBLE_EQ(report.at(kind).at("valid_accuracy").at(i).get<double>(),
                       result.at("best").at("accuracy").get<double>());
    }
    if (report.at("distilled").at("valid_accuracy").at(i).get<double>() >
        report.at("distilled").at("valid_accuracy").at(best).get<double>())
      best = i;
  }
  EXPECT_EQ(read_file((dir_ / "run/student/model.safetensors").string()),
            read_file((dir_ / ("run/seed-" + std::to_string(seeds[best]) + "/distilled/best/model.safetensors")).string()))
      << "the deployable student is the seed best on the validation slice";
}

TEST_F(DistillE2ETest, ResumeKeepsFinishedPartsAndRedoesTheRest) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  const auto kept = read_file((dir_ / "run/seed-1/distilled/result.json").string());
  fs::remove(dir_ / "run/seed-2/baseline/result.json");
  fs::remove(dir_ / "run/report.json");
  auto again = run_kd("distill --config distill.yaml", dir_);
  EXPECT_NE(again.code, 0) << "an existing run needs --resume or --overwrite";
  EXPECT_EQ(error_lines(again.err), 1u) << again.err;
  // A resume with another setting that shaped the students is refused, naming it; config.yaml stays.
  const std::string saved = read_file((dir_ / "run/config.yaml").string());
  auto changed = run_kd("distill --config distill.yaml --resume --set distill.temperature=3", dir_);
  EXPECT_EQ(changed.code, 2) << changed.err;
  EXPECT_EQ(error_lines(changed.err), 1u) << changed.err;
  EXPECT_NE(changed.err.find("'distill.temperature': is 3 but the run being resumed has 2"), std::string::npos)
      << changed.err;
  EXPECT_EQ(read_file((dir_ / "run/config.yaml").string()), saved);
  EXPECT_FALSE(fs::exists(dir_ / "run/report.json"));
  auto r = run_kd("distill --config distill.yaml --resume --set report.latency_repeats=2", dir_);  // may change
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file((dir_ / "run/seed-1/distilled/result.json").string()), kept);
  EXPECT_NE(r.err.find("done before"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "run/seed-2/baseline/result.json"));
  EXPECT_TRUE(fs::exists(dir_ / "run/report.json"));
}

// kill -9 while the teacher's logits cache is half written (the run's first safetensors file), during a
// part's training, half-way through one of its checkpoints, and with every part done but the report unwritten; --resume then ends with the same deployable student as the uninterrupted run
// of the suite, byte for byte, and the same figure for every part.
TEST_F(DistillE2ETest, KillNineAnywhereThenResumeEndsWithTheSameStudent) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  const auto want = read_file((dir_ / "run/student/model.safetensors").string());
  for (const std::string fault : {"write:1", "step:5", "checkpoint:2", "report:1"}) {
    const auto dir = test::temp_dir("e2e_distill_kill_" + fault.substr(0, fault.find(':')));
    write_setup(dir);
    const auto killed = run_kd("distill --config distill.yaml", dir, "", "KD_FAULT=" + fault);
    EXPECT_EQ(killed.code, 128 + SIGKILL) << fault << ": " << killed.err;
    EXPECT_FALSE(fs::exists(dir / "run/report.json")) << fault;
    const auto resumed = run_kd("distill --config distill.yaml --resume", dir);
    ASSERT_EQ(resumed.code, 0) << fault << ": " << resumed.err;
    EXPECT_TRUE(read_file((dir / "run/student/model.safetensors").string()) == want) << fault << ": student differs";
    for (const char* part : {"seed-1/distilled", "seed-2/distilled", "seed-1/baseline", "seed-2/baseline"})
      EXPECT_EQ(read_json((dir / "run" / part / "result.json").string())["test"],
                read_json((dir_ / "run" / part / "result.json").string())["test"])
          << fault << " " << part;
    for (const auto& e : fs::recursive_directory_iterator(dir / "run"))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << fault << ": " << e.path();
  }
}

TEST_F(DistillE2ETest, OverwriteRemovesWhatKdWroteAndNothingElse) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  const fs::path run = dir_ / "run";
  fs::create_directories(run / "my_data");
  std::ofstream(run / "my_data/rows.tsv") << "sentence\tlabel\nmine\t1\n";
  std::ofstream(run / "my_config.yaml") << "kept: true\n";
  fs::create_directories(run / "seed-9/distilled");  // a seed of an earlier run: kd's
  std::ofstream(run / "report.md.tmp-4242") << "a killed writer's";
  auto r = run_kd("distill --config distill.yaml --overwrite --set report.seeds=[1] --set report.baseline=false", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file((run / "my_data/rows.tsv").string()), "sentence\tlabel\nmine\t1\n");
  EXPECT_EQ(read_file((run / "my_config.yaml").string()), "kept: true\n");
  EXPECT_FALSE(fs::exists(run / "seed-9"));
  EXPECT_FALSE(fs::exists(run / "seed-2")) << "the earlier run's seed 2 is gone: this run has seed 1 only";
  EXPECT_FALSE(fs::exists(run / "report.md.tmp-4242"));
  EXPECT_EQ(read_json((run / "report.json").string()).at("distilled").at("accuracy").size(), 1u);
}

TEST_F(DistillE2ETest, EvalAndPredictLoadTheStudent) {
  ASSERT_EQ(first_.code, 0) << first_.err;
  auto r = run_kd("eval --model run/student --data dev.tsv --teacher teacher --out eval.json", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto ev = read_json((dir_ / "eval.json").string());
  EXPECT_EQ(ev["n"].get<int64_t>(), 40);
  const double agreement = ev["teacher"]["agreement"].get<double>();
  EXPECT_GE(agreement, 0.0);
  EXPECT_LE(agreement, 1.0);
  EXPECT_GE(ev["teacher"]["kl"].get<double>(), 0.0);

  {
    std::ofstream lines(dir_ / "lines.txt");
    lines << "a gripping , funny film\nthe worst movie of the year\n\nok\n";
  }
  r = run_kd("predict --model run/student --jsonl", dir_, (dir_ / "lines.txt").string());
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(count_lines(r.out), 4u) << r.out;
  const auto first = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  const double p = first["probabilities"]["0"].get<double>() + first["probabilities"]["1"].get<double>();
  EXPECT_NEAR(p, 1.0, 1e-9);
  r = run_kd("predict --model teacher --input lines.txt", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 4u) << "a teacher folder predicts too";
}

// Augmented copies with word swaps: cached beside the training rows under a key naming the swaps and
// the neighbour lists, reused on --resume, and counted in the report's settings.
// A Transformer student (2 of the teacher's 6 layers) distilled with feature terms (hidden states,
// attention scores, MiniLMv2 relations) besides the logits: the teacher's features are cached once
// (knowledge/features.safetensors), the report names the terms, the recorded figure is what the saved
// student scores, and transformers loads the student's folder with the same logits. A resumed run after the
// first part has finished redoes nothing and reuses the cache; unlabelled rows, which the cache does not
// cover, are a one-line ConfigError.
TEST(DistillE2EBertStudentTest, FeatureTermsTrainATransformerStudentThatTransformersLoads) {
  const auto dir = test::temp_dir("e2e_distill_bert");
  write_setup(dir);
  const std::string sets =
      " --set distill.features='[{type: hidden_mse, layers: skip}, {type: attention_mse, layers: skip},"
      " {type: relation_kl, relation_heads: 12, weight: 0.5}]' --set report.seeds=[1] --set train.epochs=1"
      " --set report.baseline=false";
  {
    std::string cfg = read_file((dir / "distill.yaml").string());
    const auto at = cfg.find("student: {type: bilstm");
    cfg.replace(at, cfg.find('\n', at) - at, "student: {type: bert, layers: 2}");
    write_file_atomic((dir / "distill.yaml").string(), cfg);
  }
  auto r = run_kd("distill --config distill.yaml" + sets, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("caching the teacher's features"), std::string::npos) << r.err;
  // Only what the terms read: skip pairs student layers 1, 2 with teacher layers 2, 4; relation_kl the last.
  EXPECT_NE(r.err.find("[\"attn_scores.2\",\"attn_scores.4\",\"hidden.0\",\"hidden.2\",\"hidden.4\",\"key.6\","
                       "\"query.6\",\"value.6\"]"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(dir / "run/knowledge/features.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "run/knowledge/train.safetensors")) << "the feature cache holds the logits too";
  const auto report = read_json((dir / "run/report.json").string());
  EXPECT_EQ(report.at("settings").at("knowledge").get<std::string>(), "cached");
  const auto features = report.at("settings").at("features").get<std::string>();
  EXPECT_EQ(features, "hidden_mse×1 + attention_mse×1 + relation_kl×0.5");
  EXPECT_EQ(report.at("distilled").at("type").get<std::string>(), "bert");
  auto ev = run_kd("eval --model run/student --data dev.tsv --batch-size 128 --out ev.json --log-level warn", dir);
  ASSERT_EQ(ev.code, 0) << ev.err;
  EXPECT_DOUBLE_EQ(report.at("distilled").at("accuracy").at(0).get<double>(),
                   read_json((dir / "ev.json").string()).at("accuracy").get<double>());
  test::expect_transformers_agrees(dir / "run/student", dir / "dev.tsv", dir, 1e-4);
  auto again = run_kd("distill --config distill.yaml --resume" + sets, dir);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("done before"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("using the cached teacher features in run/knowledge/features.safetensors"),
            std::string::npos)
      << again.err;
  auto extra = run_kd("distill --config distill.yaml --run-dir run_unlabelled --set data.unlabelled=dev.tsv" + sets, dir);
  EXPECT_EQ(extra.code, 2) << extra.err;
  EXPECT_EQ(error_lines(extra.err), 1u) << extra.err;
  EXPECT_NE(extra.err.find("distill.cache: the teacher's features are cached for the training file only"),
            std::string::npos)
      << extra.err;
}

TEST(DistillE2EAugmentTest, SwappedCopiesAreCachedKeyedAndReused) {
  const auto dir = test::temp_dir("e2e_distill_augment");
  write_setup(dir);
  const std::string args =
      "distill --config distill.yaml --set report.seeds=[1] --set report.baseline=false --set train.epochs=1 "
      "--set distill.augment.copies=2 --set distill.augment.swap_prob=0.5 --set distill.augment.neighbours=4";
  auto r = run_kd(args, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("have swap candidates"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(dir / "run/knowledge/augmented.safetensors"));
  const auto settings = read_json((dir / "run/report.json").string()).at("settings");
  EXPECT_GT(settings.at("augmented_rows").get<int64_t>(), 160) << settings.dump();
  EXPECT_NE(settings.at("augment").get<std::string>().find("swap=0.5 neighbours=4"), std::string::npos);
  const auto cache = read_file((dir / "run/knowledge/augmented.safetensors").string());
  EXPECT_NE(cache.find("swap=0.5 neighbours=4 table="), std::string::npos) << "the key names the neighbour lists";

  fs::remove(dir / "run/report.json");
  r = run_kd(args + " --resume", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("using the cached teacher knowledge in run/knowledge/augmented.safetensors"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_file((dir / "run/knowledge/augmented.safetensors").string()), cache);
}

// Each bad input: non-zero exit, exactly one error line naming the problem, and no report written.
TEST(DistillE2EBadInputTest, EachCaseIsOneLineErrorAndNoReport) {
  const auto dir = test::temp_dir("e2e_distill_bad");
  write_setup(dir);
  {
    std::ofstream bad(dir / "bad_labels.tsv");
    bad << "sentence\tlabel\ngood\t1\nbad\t7\n";
  }
  save_teacher(dir / "other_teacher", 1e-3);
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"--set distill.temperature=0", "distill.temperature"},
      {"--set distill.alpha=1.5", "distill.alpha"},
      {"--set distill.soft_loss=cosine", "soft loss"},
      {"--set student.hidden=0", "student.hidden"},
      {"--set student.type=transformer", "student.type"},
      {"--set data.train=bad_labels.tsv", "bad_labels.tsv"},
      {"--set teacher=missing_teacher", "missing_teacher"},
      {"--set distill.augment.copies=2 --set distill.augment.swap_prob=1.5", "distill.augment.swap_prob"},
      {"--set report.targets.speedup=10", "unknown target 'speedup'"},
      {"--set report.targets.retention=-1", "report.targets.retention"},
      {"--set data.valid_fraction=0.001", "data.valid_fraction"},
      {"--set data.valid_max_rows=0", "data.valid_max_rows"},
      {"--set report.latency_warmup_seconds=.inf", "report.latency_warmup_seconds"},
      {"--set report.latency_warmup_seconds=.nan", "report.latency_warmup_seconds"},
      {"--set \"run_dir=''\"", "is empty (hint: name a folder"},
      {"--set run_dir=", "'run_dir': has no value"},
      {"--set data.train_max_rows=-5", "data.train_max_rows"},
  };
  for (const auto& c : cases) {
    fs::remove_all(dir / "run");
    auto r = run_kd("distill --config distill.yaml " + c.args, dir);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_EQ(error_lines(r.err), 1u) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir / "run/report.json")) << c.args;
  }

  EXPECT_FALSE(fs::exists(dir / "null")) << "an empty run_dir is no folder named null";
  // The command line: a missing --config is a command-line error (2), a --config file that is not there a
  // missing file (3); each one line.
  auto no_config = run_kd("distill", dir);
  EXPECT_EQ(no_config.code, 2) << no_config.err;
  EXPECT_EQ(count_lines(no_config.err), 1u) << no_config.err;
  auto missing = run_kd("distill --config nowhere.yaml", dir);
  EXPECT_EQ(missing.code, 3) << missing.err;
  EXPECT_EQ(error_lines(missing.err), 1u) << missing.err;
  EXPECT_NE(missing.err.find("nowhere.yaml"), std::string::npos) << missing.err;

  // A cache from another teacher is refused, never used as if it were this teacher's knowledge.
  fs::remove_all(dir / "run");
  auto r = run_kd("distill --config distill.yaml --set report.seeds=[1] --set train.epochs=1", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_kd("distill --config distill.yaml --run-dir run2 --set teacher=other_teacher "
             "--set distill.cache_path=run/knowledge/train.safetensors",
             dir);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("teacher"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "run2/report.json"));
}

// --device cuda for distill, eval, predict, cache and bench on a machine without a GPU: each is the one-line
// ConfigError, and distill writes no run folder. (Where a GPU is visible there is no refusal: skipped.)
TEST(DistillE2EDeviceTest, CudaWithoutADeviceFailsInOneLineWithNoRunFolder) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible: there is no refusal to check";
  const auto dir = test::temp_dir("e2e_distill_no_cuda");
  write_setup(dir);
  const std::string small = " --set report.seeds=[1] --set train.epochs=1 --set report.baseline=false";
  auto r = run_kd("distill --config distill.yaml --device cuda" + small, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("kd: error: --device cuda: no CUDA device is visible"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(hint: use --device cpu)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "run")) << "nothing of the run folder is written";
  for (const char* args : {"eval --model teacher --data dev.tsv --out eval.json", "predict --model teacher",
                           "cache --teacher teacher --data dev.tsv --out dev.kdc",
                           "bench infer --model teacher --data dev.tsv --repeats 1 --warmup 0"}) {
    auto e = run_kd(std::string(args) + " --device cuda", dir, (dir / "dev.tsv").string());
    EXPECT_EQ(e.code, 2) << args << ": " << e.err;
    EXPECT_EQ(error_lines(e.err), 1u) << args << ": " << e.err;
    EXPECT_NE(e.err.find("--device cuda: no CUDA device is visible"), std::string::npos) << args << ": " << e.err;
  }
  EXPECT_FALSE(fs::exists(dir / "eval.json"));
  EXPECT_FALSE(fs::exists(dir / "dev.kdc"));
}

// --device cuda on a GPU machine: the models run there (the report, eval's JSON and bench's JSON say so)
// and the distilled student matches the CPU run's accuracy. Without a GPU: skipped, not passed.
TEST(DistillE2EDeviceTest, CudaRunsThereAndMatchesTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  const auto dir = test::temp_dir("e2e_distill_cuda");
  write_setup(dir);
  const std::string small = " --set report.seeds=[1] --set train.epochs=1 --set report.baseline=false";
  auto r = run_kd("distill --config distill.yaml --device cuda" + small, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = read_json((dir / "run/report.json").string());
  EXPECT_EQ(report.at("settings").at("device").get<std::string>(), "cuda");
  EXPECT_EQ(report.at("teacher").at("profile").at("device").get<std::string>().rfind("cuda", 0), 0u) << report.dump(1);
  auto cpu = run_kd("distill --config distill.yaml --run-dir run_cpu" + small, dir);
  ASSERT_EQ(cpu.code, 0) << cpu.err;
  const auto cpu_report = read_json((dir / "run_cpu/report.json").string());
  EXPECT_NEAR(report.at("distilled").at("accuracy").at(0).get<double>(),
              cpu_report.at("distilled").at("accuracy").at(0).get<double>(), 0.1)
      << "cuDNN's LSTM and the CPU's differ in rounding only";
  auto e = run_kd("eval --model run/student --data dev.tsv --teacher teacher --out eval.json --device cuda", dir);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(read_json((dir / "eval.json").string()).at("device").get<std::string>(), "cuda");
  e = run_kd("predict --model run/student --device cuda", dir, (dir / "dev.tsv").string());
  EXPECT_EQ(e.code, 0) << e.err;
  e = run_kd("bench infer --model run/student --data dev.tsv --repeats 2 --warmup 1 --device cuda --out infer.json", dir);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(read_json((dir / "infer.json").string()).at("device").get<std::string>(), "cuda");
}

}  // namespace
}  // namespace kd

namespace kd {
namespace {

// `stages:`: general distillation from the pre-trained encoder over WikiText lines and the task's texts,
// then task distillation, then fine-tuning, each in its own folder from the one before; the report gives
// the figure after each stage; a second run finds every stage done; bad stage lists are one-line errors
// with nothing written.
TEST(DistillE2EStagesTest, GeneralThenTaskThenFineTuningEachFromTheLast) {
  const auto dir = test::temp_dir("e2e_distill_stages");
  write_setup(dir);
  {
    std::ifstream wiki(test::shared_data("wikitext2/wiki.valid.tokens"));
    std::ofstream out(dir / "wiki.txt");
    std::string line;
    for (int n = 0; n < 60 && std::getline(wiki, line);)
      if (line.size() > 20 && line.find(" = ") == std::string::npos) out << line << "\n", ++n;
  }
  std::string cfg = read_file((dir / "distill.yaml").string());
  const auto at = cfg.find("student: {type: bilstm");
  cfg.replace(at, cfg.find('\n', at) - at, "student: {type: bert, layers: 2}");
  cfg += "stages:\n"
         "  - type: general\n"
         "    teacher: {type: bert, path: " + test::model_dir() + ", max_length: 32}\n"
         "    data: {train: wiki.txt, text: '0', header: false, format: tsv}\n"
         "    task_texts: true\n"
         "    features: [{type: hidden_mse, layers: skip}, {type: attention_mse, layers: skip, weight: {start: 1, warmup: 0.5}}]\n"
         "  - {type: task}\n"
         "  - {type: finetune, name: tune, train: {lr: 1.0e-5}}\n";
  write_file_atomic((dir / "staged.yaml").string(), cfg);
  const std::string sets = " --set report.seeds=[1] --set train.epochs=1 --set report.baseline=false";
  auto r = run_kd("distill --config staged.yaml" + sets, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("stage 'general': 204 texts without labels"), std::string::npos) << r.err;  // 60 + 144
  for (const char* stage : {"general", "task", "tune"})
    EXPECT_TRUE(fs::exists(dir / "run/seed-1" / stage / "result.json")) << stage;
  EXPECT_FALSE(fs::exists(dir / "run/seed-1/distilled"));
  // The deployable student is the last stage's chosen model.
  EXPECT_EQ(read_file((dir / "run/student/model.safetensors").string()),
            read_file((dir / "run/seed-1/tune/best/model.safetensors").string()));
  const auto report = read_json((dir / "run/report.json").string());
  ASSERT_EQ(report.at("stages").size(), 3u);
  EXPECT_EQ(report.at("stages").at(0).at("name").get<std::string>(), "general (general)");
  EXPECT_DOUBLE_EQ(report.at("stages").at(2).at("accuracy").at(0).get<double>(),
                   report.at("distilled").at("accuracy").at(0).get<double>());
  EXPECT_NE(read_file((dir / "run/report.md").string()).find("## After each stage"), std::string::npos);
  // The general stage keeps its last weights (its validation accuracy chooses nothing).
  const auto general = read_json((dir / "run/seed-1/general/result.json").string());
  const auto history = general.at("history");
  EXPECT_EQ(general.at("best").at("step"), history.back().at("step"));

  auto again = run_kd("distill --config staged.yaml --resume" + sets, dir);
  ASSERT_EQ(again.code, 0) << again.err;
  for (const char* stage : {"general", "task", "tune"})
    EXPECT_NE(again.err.find(std::string("done before: run/seed-1/") + stage), std::string::npos) << again.err;

  struct Case {
    std::string stages, expect;
  };
  const std::vector<Case> cases = {
      {"[]", "'stages'"},
      {"[{type: distill}]", "unknown stage 'distill'"},
      {"[{type: general, teacher: {type: bert, path: " + test::model_dir() + ", max_length: 32}, task_texts: true}]",
       "'stages.0.features'"},
      {"[{type: general, teacher: {type: bert, path: " + test::model_dir() + ", max_length: 32}, "
       "features: [{type: hidden_mse}]}]", "'stages.0.data'"},
      {"[{type: general, teacher: {type: bert, path: " + test::model_dir() + "}, task_texts: true, "
       "features: [{type: hidden_mse}]}]", "'stages.0.teacher.max_length'"},
      {"[{type: task}, {type: task}]", "a second stage named 'task'"},
      {"[{type: finetune, features: []}]", "'stages.0.features'"},
      {"[{type: task, name: baseline}]", "'stages.0.name'"},
      {"[{type: general, teacher: {type: bert, path: " + test::model_dir() + ", max_length: 32}, task_texts: true, "
       "features: [{type: hidden_mse, weight: {start: 1, end: -1}}]}]", "'stages.0.features.0.weight'"},
  };
  for (const auto& c : cases) {
    std::string bad = cfg.substr(0, cfg.find("stages:\n")) + "stages: " + c.stages + "\n";
    write_file_atomic((dir / "bad.yaml").string(), bad);
    auto e = run_kd("distill --config bad.yaml --run-dir bad_run" + sets, dir);
    EXPECT_EQ(e.code, 2) << c.stages << ": " << e.err;
    EXPECT_EQ(error_lines(e.err), 1u) << c.stages << ": " << e.err;
    EXPECT_NE(e.err.find(c.expect), std::string::npos) << c.stages << ": " << e.err;
    EXPECT_FALSE(fs::exists(dir / "bad_run")) << "nothing written: " << c.stages;
  }
}

}  // namespace
}  // namespace kd
