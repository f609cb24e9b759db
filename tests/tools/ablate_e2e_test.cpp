// End to end through the `kd` binary: kd ablate over two variants of a small distillation (a tiny BERT
// teacher, 1-layer BERT students, a capped training set), the table against the variants' own reports,
// resume, overwrite keeping the user's files, and the bad-input cases (one error line, exit 2, nothing
// written, the last variant's mistake caught before the first variant trains).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kd/eval/distill_report.h"
#include "kd/io/atomic_file.h"
#include "models/tiny_bert.h"
#include "test_paths.h"
#include "tools/run_kd.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::error_lines;
using test::RunResult;

RunResult run_kd(const std::string& args, const fs::path& dir) { return test::run_kd(args, dir, 1); }

const char* kVariants =
    "variants:\n"
    "  - name: logits only\n"
    "  - name: + hidden states\n"
    "    with: {distill: {features: [{type: hidden_mse, layers: uniform, embeddings: true}]}}\n";

void write_setup(const fs::path& dir) {
  test::head_tsv(test::shared_data("sst2/train.tsv"), dir / "train.tsv", 120);
  test::head_tsv(test::shared_data("sst2/dev.tsv"), dir / "dev.tsv", 30);
  auto teacher = test::tiny_bert(2, 32, 2, 7, {"0", "1"});
  fs::create_directories(dir / "teacher");
  teacher->save((dir / "teacher").string());
  std::ofstream(dir / "base.yaml")
      << "run_dir: not_used\nteacher: teacher\n"
      << "data: {train: train.tsv, valid_fraction: 0.2, test: dev.tsv, text: sentence, label: label}\n"
      << "student: {type: bert, layers: 1}\n"
      << "distill: {temperature: 2.0, alpha: 0.5}\n"
      << "train: {epochs: 1, batch_size: 16, lr: 1.0e-3, checkpoint_every: 2, eval_every: 2}\n"
      << "report: {seeds: [1, 2], baseline: true, latency_repeats: 2, latency_warmup: 1}\n";
  std::ofstream(dir / "ablation.yaml") << "base: base.yaml\nrun_dir: abl\n"
                                       << "with: {data: {train_max_rows: 60}, report: {baseline: false}}\n"
                                       << kVariants;
}

TEST(AblateE2ETest, RunsEachVariantAndTabulatesTheirOwnFigures) {
  const fs::path dir = test::temp_dir("e2e_ablate");
  write_setup(dir);
  const RunResult r = run_kd("ablate --config ablation.yaml", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path abl = dir / "abl";
  for (const char* f : {"ablation.yaml", "ablation.json", "ablation.md", "1-logits-only/report.json",
                        "2-hidden-states/report.json", "2-hidden-states/student/model.safetensors"})
    EXPECT_TRUE(fs::exists(abl / f)) << f;
  // Each variant's config is the whole experiment: base, the common patch, its own, its folder.
  Config second = Config::load((abl / "2-hidden-states/config.yaml").string());
  EXPECT_EQ(second.root().get<std::string>("run_dir", ""), "abl/2-hidden-states");
  EXPECT_EQ(second.root().child("data").get<int64_t>("train_max_rows", 0), 60);
  EXPECT_FALSE(second.root().child("report").get<bool>("baseline", true));
  EXPECT_TRUE(second.root().child("distill").is_list("features"));
  EXPECT_FALSE(Config::load((abl / "1-logits-only/config.yaml").string()).root().child("distill").has("features"));

  const auto table = read_json((abl / "ablation.json").string());
  ASSERT_EQ(table.at("variants").size(), 2u);
  std::vector<std::vector<double>> valid;
  for (int i = 0; i < 2; ++i) {
    const auto& v = table.at("variants").at(i);
    const auto report = read_json((abl / v.at("folder").get<std::string>() / "report.json").string());
    EXPECT_EQ(report.at("settings").at("train_rows").get<int64_t>(), 60) << "data.train_max_rows";
    EXPECT_FALSE(report.contains("baseline") && report.at("baseline").contains("accuracy") &&
                 !report.at("baseline").at("accuracy").empty())
        << "the common patch turned the baselines off";
    EXPECT_EQ(v.at("test_accuracy"), report.at("distilled").at("accuracy"));
    EXPECT_EQ(v.at("valid_accuracy"), report.at("distilled").at("valid_accuracy"));
    EXPECT_GT(v.at("wall_seconds").get<double>(), 0);
    valid.push_back(v.at("valid_accuracy").get<std::vector<double>>());
  }
  EXPECT_EQ(table.at("variants").at(1).at("effect").at("valid_gain").get<double>(),
            mean_of(valid[1]) - mean_of(valid[0]));
  const auto features = read_json((abl / "2-hidden-states/report.json").string()).at("settings").at("features");
  EXPECT_EQ(features.get<std::string>(), "hidden_mse×1");
  const std::string md = read_file((abl / "ablation.md").string());
  EXPECT_NE(md.find("| + hidden states | `{distill: {features: [{type: hidden_mse, layers: uniform, embeddings: true}]}}` |"),
            std::string::npos)
      << md;

  // Again without a flag: refused, nothing changed.
  const std::string before = read_file((abl / "ablation.json").string());
  const RunResult again = run_kd("ablate --config ablation.yaml", dir);
  EXPECT_EQ(again.code, 2) << again.err;
  EXPECT_EQ(error_lines(again.err), 1u) << again.err;
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
  EXPECT_EQ(read_file((abl / "ablation.json").string()), before);

  // Resumed: every part is done before; the time spent is kept.
  const RunResult resumed = run_kd("ablate --config ablation.yaml --resume", dir);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("done before: abl/1-logits-only/seed-2/distilled"), std::string::npos) << resumed.err;
  EXPECT_NE(resumed.err.find("done before: abl/2-hidden-states/seed-1/distilled"), std::string::npos) << resumed.err;
  const auto after = read_json((abl / "ablation.json").string());
  for (int i = 0; i < 2; ++i) {
    EXPECT_GE(after.at("variants").at(i).at("wall_seconds").get<double>(),
              table.at("variants").at(i).at("wall_seconds").get<double>());
    EXPECT_EQ(after.at("variants").at(i).at("test_accuracy"), table.at("variants").at(i).at("test_accuracy"));
  }

  // --overwrite removes what kd wrote there and nothing else.
  std::ofstream(abl / "notes.txt") << "mine";
  const RunResult over = run_kd("ablate --config ablation.yaml --overwrite --set with.train.lr=2.0e-3", dir);
  ASSERT_EQ(over.code, 0) << over.err;
  EXPECT_EQ(read_file((abl / "notes.txt").string()), "mine");
  EXPECT_EQ(Config::load((abl / "2-hidden-states/config.yaml").string()).root().child("train").get<double>("lr", 0),
            2.0e-3);
}

TEST(AblateE2ETest, BadAblationsFailInOneLineBeforeAnythingIsWritten) {
  const fs::path dir = test::temp_dir("e2e_ablate_bad");
  write_setup(dir);
  struct Case {
    std::string yaml, expect;
    int code = 2;  // a config error; 3: a file that cannot be read
  };
  const std::string head = "base: base.yaml\nrun_dir: bad_run\n";
  const std::vector<Case> cases = {
      // The last variant's unknown key, found before the first variant trains.
      {head + "variants: [{name: a}, {name: b, with: {distill: {bogus: 1}}}]\n", "'distill.bogus'"},
      {head + "variants: [{name: a}, {name: b, with: {distill: {features: [{type: hiden_mse}]}}}]\n", "hiden_mse"},
      {head + "variants: [{name: a}, {name: b, with: {student: {layers: 9}}}]\n", "layers"},
      {head + "variants: [{name: a}, {name: a}]\n", "'a' is given twice"},
      {head + "variants: [{name: a}]\n", "at least two"},
      {"base: missing.yaml\nrun_dir: bad_run\nvariants: [{name: a}, {name: b}]\n", "missing.yaml", 3},
      {head + "variants: [{name: a}, {name: b, with: {run_dir: x}}]\n", "sets run_dir"},
      {head + "bogus: 1\nvariants: [{name: a}, {name: b}]\n", "'bogus'"},
  };
  for (const auto& c : cases) {
    write_file_atomic((dir / "bad.yaml").string(), c.yaml);
    const RunResult e = run_kd("ablate --config bad.yaml", dir);
    EXPECT_EQ(e.code, c.code) << c.yaml << e.err;
    EXPECT_EQ(error_lines(e.err), 1u) << c.yaml << e.err;
    EXPECT_NE(e.err.find(c.expect), std::string::npos) << c.yaml << e.err;
    EXPECT_FALSE(fs::exists(dir / "bad_run")) << "nothing written: " << c.yaml;
  }
}

}  // namespace
}  // namespace kd
