// kd ablate's pieces without training: how a variant's config is made from the base and the patches,
// the ablation file's errors, and how the table judges each variant against the one above it.
#include "kd/train/ablation.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "expect_error.h"
#include "kd/eval/ablation_report.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::expect_error;

TEST(AblationTest, PatchesMergeIntoMapsAndReplaceOrRemoveEverythingElse) {
  const YAML::Node base = YAML::Load(
      "train: {lr: 0.1, epochs: 2}\ndistill: {alpha: 0.5, features: [{type: hidden_mse}]}\nstages: [{type: task}]\n");
  const YAML::Node patch = YAML::Load("train: {epochs: 1}\ndistill: {features: [{type: attention_mse}]}\nstages: ~\n"
                                      "report: {seeds: [1]}\n");
  const YAML::Node m = merge_config(base, patch);
  EXPECT_DOUBLE_EQ(m["train"]["lr"].as<double>(), 0.1) << "kept";
  EXPECT_EQ(m["train"]["epochs"].as<int>(), 1) << "replaced inside the map";
  EXPECT_DOUBLE_EQ(m["distill"]["alpha"].as<double>(), 0.5);
  ASSERT_EQ(m["distill"]["features"].size(), 1u) << "a list is replaced, not appended to";
  EXPECT_EQ(m["distill"]["features"][0]["type"].as<std::string>(), "attention_mse");
  EXPECT_FALSE(m["stages"]) << "null removes";
  EXPECT_EQ(m["report"]["seeds"][0].as<int>(), 1) << "added";
  EXPECT_EQ(base["train"]["epochs"].as<int>(), 2) << "the base is not changed";
  EXPECT_EQ(merge_config(base, YAML::Node())["train"]["epochs"].as<int>(), 2) << "no patch: the base";
}

fs::path write(const fs::path& dir, const std::string& name, const std::string& text) {
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

TEST(AblationTest, EachVariantIsTheBaseThenTheCommonPatchThenItsOwnInItsFolder) {
  const fs::path dir = test::temp_dir("AblationTest");
  const auto base = write(dir, "base.yaml", "run_dir: elsewhere\ntrain: {epochs: 2, lr: 0.1}\ndistill: {alpha: 0.5}\n");
  Config file = Config::from_string("base: " + base.string() +
                                        "\nrun_dir: abl\nwith: {train: {epochs: 1}}\nvariants:\n"
                                        "  - name: logits only\n"
                                        "  - name: '+ hidden states'\n"
                                        "    with:\n"
                                        "      distill: {alpha: 0.9}\n"
                                        "      train:\n"
                                        "        lr: 0.2\n",
                                    "abl.yaml");
  const AblationOptions o = AblationOptions::from(file);
  file.check_all_used();  // the patches' keys are the variants' to check, not the ablation file's
  ASSERT_EQ(o.variants.size(), 2u);
  EXPECT_EQ(o.variants[0].folder, "1-logits-only");
  EXPECT_EQ(o.variants[1].folder, "2-hidden-states");
  EXPECT_EQ(o.variants[0].changes, "");
  EXPECT_EQ(o.variants[1].changes, "{distill: {alpha: 0.9}, train: {lr: 0.2}}") << "one line, for a table cell";
  Config first = o.variant_config(0), second = o.variant_config(1);
  EXPECT_EQ(first.root().get<std::string>("run_dir", ""), "abl/1-logits-only");
  EXPECT_EQ(first.root().child("train").get<int64_t>("epochs", 0), 1);
  EXPECT_DOUBLE_EQ(first.root().child("train").get<double>("lr", 0), 0.1);
  EXPECT_DOUBLE_EQ(first.root().child("distill").get<double>("alpha", 0), 0.5);
  EXPECT_EQ(second.root().get<std::string>("run_dir", ""), "abl/2-hidden-states");
  EXPECT_EQ(second.root().child("train").get<int64_t>("epochs", 0), 1);
  EXPECT_DOUBLE_EQ(second.root().child("train").get<double>("lr", 0), 0.2);
  EXPECT_DOUBLE_EQ(second.root().child("distill").get<double>("alpha", 0), 0.9);
}

TEST(AblationTest, AMalformedAblationFileIsAnErrorNamingTheKey) {
  const std::string head = "base: b.yaml\nrun_dir: abl\n";
  const std::string two = "variants: [{name: a}, {name: b}]\n";
  struct Case {
    std::string yaml, expect;
  };
  const std::vector<Case> cases = {
      {"run_dir: abl\n" + two, "'base'"},
      {"base: b.yaml\n" + two, "'run_dir'"},
      {"base: b.yaml\nrun_dir: ''\n" + two, "'run_dir'"},
      {head, "'variants'"},
      {head + "variants: [{name: a}]\n", "at least two"},
      {head + "variants: [{name: a}, {name: a}]\n", "'a' is given twice"},
      {head + "variants: [{name: a}, {name: ''}]\n", "'variants.1.name'"},
      {head + "variants: [{name: a}, {name: b, with: [1]}]\n", "'variants.1.with'"},
      {head + "variants: [{name: a}, {name: b, with: {run_dir: x}}]\n", "sets run_dir"},
      {head + "with: 3\n" + two, "'with'"},
  };
  for (const auto& c : cases) {
    Config config = Config::from_string(c.yaml, "abl.yaml");
    expect_error<ConfigError>([&] { AblationOptions::from(config); }, {"abl.yaml", c.expect});
  }
  Config missing = Config::from_string("base: /nonexistent/base.yaml\nrun_dir: abl\n" + two, "abl.yaml");
  const AblationOptions o = AblationOptions::from(missing);
  expect_error<IoError>([&] { o.variant_config(0); }, {"abl.yaml", "'base'", "/nonexistent/base.yaml"});
}

AblationRow row(const std::string& name, std::vector<double> valid, std::vector<double> test) {
  AblationRow r;
  r.name = name;
  r.finished = true;
  r.distilled.valid_accuracy = std::move(valid);
  r.distilled.accuracy = std::move(test);
  return r;
}

TEST(AblationTest, AVariantHelpsOrHurtsOnlyBeyondTheSeedNoiseOfTheValidationRows) {
  const AblationRow base = row("logits", {0.900, 0.902}, {0.85, 0.86});
  // std of {0.900, 0.902} is 0.001414: noise 2 × that = 0.00283.
  const AblationEffect up = ablation_effect(row("up", {0.910, 0.912}, {0.80, 0.80}), base);
  EXPECT_NEAR(up.valid_gain, 0.010, 1e-12);
  EXPECT_NEAR(up.valid_noise, 2 * std::sqrt(2e-6), 1e-12);
  EXPECT_EQ(up.verdict, "helps") << "decided on validation, whatever the test rows say";
  EXPECT_NEAR(up.test_gain, -0.055, 1e-12);
  EXPECT_EQ(ablation_effect(row("down", {0.890, 0.892}, {0.9, 0.9}), base).verdict, "hurts");
  EXPECT_EQ(ablation_effect(row("same", {0.902, 0.900}, {0.9, 0.9}), base).verdict, "within noise");
  EXPECT_EQ(ablation_effect(row("one", {0.95}, {0.9}), base).verdict, "one seed: not decided");
  AblationRow unfinished;
  EXPECT_EQ(ablation_effect(unfinished, base).verdict, "not measured");

  AblationReport report;
  report.base = "base.yaml";
  report.teacher_accuracy = 0.9;
  report.rows = {base, row("+ hidden", {0.910, 0.912}, {0.87, 0.87})};
  report.rows.push_back(AblationRow{"+ later", "3-later", "{x: 1}", false, 0, {}});
  const std::string md = report.to_markdown();
  EXPECT_NE(md.find("| + hidden | — | 91.10 ± 0.14% (2 seeds) | +1.00 points (noise 0.28) | helps | 87.00 ± 0.00% "
                    "(2 seeds) | +1.50 points (noise 1.41) | 96.67% |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| + later | `{x: 1}` | not run yet |"), std::string::npos) << md;
  const auto j = report.to_json();
  EXPECT_EQ(j.at("variants").at(1).at("effect").at("verdict").get<std::string>(), "helps");
  EXPECT_EQ(j.at("variants").at(1).at("against").get<std::string>(), "logits");
  EXPECT_FALSE(j.at("variants").at(0).contains("effect"));
}

}  // namespace
}  // namespace kd
