// ShippedConfigsTest: every experiment config under configs/ (the ones the README's commands run) reads
// without an error, uses every key it sets, names data files that exist and read with the columns it
// says, and builds its model. A full run of one takes minutes to an hour, so without this a typo in a
// config, or a key a refactor renamed, would only show when someone next ran it.
//
// The distill configs name a teacher under runs/, which exists only after its train-teacher run; their
// students are built against the pretrained all-MiniLM-L6-v2 instead, which has the same tokenizer and
// embedding table as every fine-tuned teacher kd makes from it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "kd/data/data_config.h"
#include "kd/data/label_vocab.h"
#include "kd/io/config.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/student_registry.h"
#include "kd/train/distill_pipeline.h"
#include "kd/train/ablation.h"
#include "kd/train/lm_distill.h"
#include "kd/train/trainer_config.h"
#include "../test_paths.h"  // tests/ is not on the include path

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Config paths are relative to the repository root, where the README's commands run.
std::string from_root(const std::string& path) {
  return fs::path(path).is_absolute() ? path : (fs::path(kd::test::source_dir()) / path).string();
}

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(kd::test::source_dir()) / "configs"))
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Reads the data section's files as a run would; returns the training rows' labels.
kd::LabelVocab read_data(kd::DataConfig data) {
  data.train = from_root(data.train);
  if (!data.valid.empty()) data.valid = from_root(data.valid);
  if (!data.test.empty()) data.test = from_root(data.test);
  const kd::DataSplits splits = kd::read_splits(data);
  const kd::LabelVocab labels = kd::LabelVocab::build(splits.train);
  EXPECT_GE(labels.size(), 2);
  EXPECT_FALSE(splits.valid.empty());
  // Every shipped config reports on a test file kept apart from the rows that choose checkpoints.
  EXPECT_TRUE(splits.has_test()) << "no data.test";
  EXPECT_TRUE(splits.warnings.empty()) << splits.warnings.front();
  for (const auto* part : {&splits.valid, &splits.test})
    for (const auto& row : *part)
      EXPECT_TRUE(labels.contains(row.label)) << row.line << ": label '" << row.label
                                              << "' is not among the training labels";
  return labels;
}

void check_teacher_config(const fs::path& path) {
  // The model path is relative to the repository root; the test runs elsewhere.
  auto config = kd::Config::load(path.string());
  const auto model_path = config.root().child("model").get<std::string>("path", "");
  config = kd::Config::load(path.string(), {"model.path=" + from_root(model_path)});
  auto root = config.root();
  const auto run_dir = root.get<std::string>("run_dir", "runs/teacher");
  const auto labels = read_data(kd::DataConfig::from(root.child("data")));
  (void)kd::trainer_options_from(root.child("train"), run_dir);
  auto teacher = kd::make_teacher(root.child("model"), labels);
  EXPECT_EQ(teacher->labels().size(), labels.size());
  config.check_all_used();
}

void check_distill_config(kd::Config config) {
  auto root = config.root();
  const auto options = kd::DistillOptions::from(root);
  EXPECT_TRUE(ends_with(options.teacher_dir, "/best")) << "names a train-teacher run's best checkpoint";
  const auto labels = read_data(options.data);
  if (!options.unlabelled.empty()) {
    EXPECT_TRUE(fs::exists(from_root(options.unlabelled))) << options.unlabelled;
  }
  kd::BertTextClassifierOptions t;
  t.path = kd::test::model_dir();
  const auto teacher = kd::BertTextClassifier::from_pretrained(t, labels);
  const auto student = kd::make_student(root.child("student"), *teacher);
  EXPECT_EQ(student->labels().size(), labels.size());
  if (!options.features.empty()) {
    (void)kd::FeatureObjective(options.features, kd::FeatureTermContext{student->encoder_shape(), teacher->encoder_shape()});
  }
  // A general stage's pre-trained teacher (a path from the repository root, as model.path is) and the
  // feature terms it is distilled with; the stand-in teacher has its shape.
  auto stages = options.stages;
  for (auto& stage : stages) {
    if (stage.type != "general") continue;
    auto& section = stage.teacher.front();
    EXPECT_EQ(section.get<std::string>("type", ""), "bert");
    const auto model = section.get<std::string>("path", "");
    EXPECT_TRUE(fs::exists(from_root(model))) << model;
    EXPECT_GT(section.get<int64_t>("max_length", 0), 0) << "the fine-tuned teacher's max_length, which the pipeline checks";
    if (!stage.data.empty()) {
      EXPECT_TRUE(fs::exists(from_root(stage.data))) << stage.data;
    }
    (void)kd::FeatureObjective(stage.features, kd::FeatureTermContext{student->encoder_shape(), teacher->encoder_shape()});
  }
  config.check_all_used();
}

// An ablation varies a shipped distillation config; each variant is checked as that config is.
void check_ablation_config(const fs::path& path) {
  auto config = kd::Config::load(path.string());
  auto options = kd::AblationOptions::from(config);
  config.check_all_used();
  EXPECT_TRUE(ends_with(options.base, "_distill.yaml")) << options.base;
  options.base = from_root(options.base);
  for (size_t i = 0; i < options.variants.size(); ++i) {
    SCOPED_TRACE(options.variants[i].name);
    check_distill_config(options.variant_config(i));
  }
}

void check_lm_config(const fs::path& path) {
  auto config = kd::Config::load(path.string());
  const auto options = kd::LmDistillOptions::from(config.root());
  config.check_all_used();
  EXPECT_TRUE(fs::exists(from_root(options.train_file))) << options.train_file;
  EXPECT_TRUE(fs::exists(from_root(options.eval_file))) << options.eval_file;
  EXPECT_TRUE(ends_with(options.teacher, ".gguf")) << options.teacher;
}

}  // namespace

TEST(ShippedConfigsTest, EveryConfigReadsUsesAllItsKeysAndFindsItsData) {
  const auto configs = shipped_configs();
  ASSERT_GE(configs.size(), 7u) << "three datasets x (teacher, distill) and the LM config";
  for (const auto& path : configs) {
    SCOPED_TRACE(path.string());
    const std::string name = path.filename().string();
    try {
      if (ends_with(name, "_teacher.yaml"))
        check_teacher_config(path);
      else if (ends_with(name, "_distill_lm.yaml"))
        check_lm_config(path);
      else if (ends_with(name, "_distill.yaml"))
        check_distill_config(kd::Config::load(path.string()));
      else if (ends_with(name, "_ablation.yaml"))
        check_ablation_config(path);
      else
        ADD_FAILURE() << "unknown kind of config: name it *_teacher, *_distill, *_distill_lm or *_ablation.yaml";
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
}
