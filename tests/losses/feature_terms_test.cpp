// FeatureTermTest: the configured feature terms (distill.features) on tiny BERT teachers and students:
// layer maps, zero loss when the student is the teacher, gradients reaching the student and the learned
// projection, a ConfigError naming the key for settings the two models cannot meet, and DistillStudent,
// which trains the projection with the student and saves the student alone.
#include "kd/losses/feature_terms.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "kd/error.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/student_registry.h"
#include "kd/train/distill_student.h"
#include "../test_paths.h"
#include "models/tiny_bert.h"

namespace kd {
namespace {

using test::tiny_bert;

Batch tiny_batch() { return test::tiny_bert_batch(); }

// The objective of `yaml` (a `features:` list) between two models.
FeatureObjective objective(const std::string& yaml, const TextClassifier& s, const TextClassifier& t) {
  static std::vector<Config> keep;  // the nodes refer to their config's state
  keep.push_back(Config::from_string(yaml, "features.yaml"));
  return FeatureObjective(keep.back().root().child_list("features"),
                          FeatureTermContext{s.encoder_shape(), t.encoder_shape()});
}

std::vector<std::pair<int64_t, int64_t>> pairs(const std::string& layers, int64_t m, int64_t n) {
  auto config = Config::from_string("term: {layers: " + layers + "}", "t.yaml");
  auto e = config.root().child("term");
  return layer_pairs(e, "layers", "uniform", {{m, 8, 2}, {n, 8, 2}});
}

using Pairs = std::vector<std::pair<int64_t, int64_t>>;

TEST(FeatureTermTest, LayerMaps) {
  EXPECT_EQ(pairs("uniform", 3, 6), (Pairs{{1, 2}, {2, 4}, {3, 6}}));
  EXPECT_EQ(pairs("uniform", 4, 6), (Pairs{{1, 1}, {2, 3}, {3, 4}, {4, 6}}));
  EXPECT_EQ(pairs("skip", 3, 6), (Pairs{{1, 2}, {2, 4}, {3, 6}}));
  EXPECT_EQ(pairs("skip", 2, 6), (Pairs{{1, 2}, {2, 4}}));
  EXPECT_EQ(pairs("last", 3, 6), (Pairs{{3, 6}}));
  EXPECT_EQ(pairs("[[1, 5], [3, 6]]", 3, 6), (Pairs{{1, 5}, {3, 6}}));
  for (const char* bad : {"sideways", "[[0, 1]]", "[[1, 7]]", "[[1]]", "[]"}) {
    EXPECT_THROW(pairs(bad, 3, 6), ConfigError) << bad;
  }
  EXPECT_THROW(pairs("uniform", 4, 3), ConfigError);
  EXPECT_THROW(pairs("skip", 4, 6), ConfigError);
}

TEST(FeatureTermTest, RegistryListsTheTerms) {
  EXPECT_EQ(feature_term_registry().known(), "attention_kl, attention_mse, hidden_cosine, hidden_mse, relation_kl");
}

TEST(FeatureTermTest, ZeroWhenTheStudentIsTheTeacher) {
  auto teacher = tiny_bert(3, 8, 2, 1);
  auto config = Config::from_string("student: {type: bert, layers: 3, init_layers: first}", "s.yaml");
  auto student = make_student(config.root().child("student"), *teacher);
  auto obj = objective(
      "features: [{type: hidden_mse}, {type: hidden_cosine}, {type: attention_mse}, {type: attention_kl},"
      " {type: relation_kl, relation_heads: 2}]",
      *student, *teacher);
  EXPECT_EQ(obj->describe(), "hidden_mse×1 + hidden_cosine×1 + attention_mse×1 + attention_kl×1 + relation_kl×1");
  const auto need = obj->needs();
  EXPECT_TRUE(need.hidden && need.attention_scores && need.qkv);
  EXPECT_FALSE(need.attention);
  student->module().eval();
  teacher->module().eval();
  const Batch b = tiny_batch();
  const auto loss = obj->forward(student->forward(b, need), teacher->forward(b, need), b.attention_mask);
  EXPECT_NEAR(loss.item<double>(), 0.0, 1e-5);
}

TEST(FeatureTermTest, GradientsReachTheStudentAndTheProjection) {
  auto teacher = tiny_bert(4, 16, 4, 1);
  auto student = tiny_bert(2, 8, 2, 2);
  auto obj = objective(
      "features: [{type: hidden_mse, weight: 2, layers: skip}, {type: relation_kl, relation_heads: 4, weight: 0.5}]",
      *student, *teacher);
  const auto names = obj->named_parameters().keys();
  ASSERT_EQ(names.size(), 2u) << "one projection (weight, bias) for the hidden term";
  EXPECT_EQ(obj->named_parameters()["term0.projection.weight"].sizes(), (std::vector<int64_t>{16, 8}));
  const Batch b = tiny_batch();
  const auto t = teacher->forward(b, obj->needs());
  const auto loss = obj->forward(student->forward(b, obj->needs()), t, b.attention_mask);
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  EXPECT_GT(loss.item<double>(), 0);
  loss.backward();
  EXPECT_GT(obj->named_parameters()["term0.projection.weight"].grad().abs().sum().item<double>(), 0);
  EXPECT_GT(student->module().named_parameters()["bert.encoder.layer.1.attention.self.query.weight"]
                .grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(teacher->module().named_parameters()["bert.encoder.layer.0.attention.self.query.weight"].grad().defined())
      << "the teacher is never trained";
}

TEST(FeatureTermTest, SettingsTheModelsCannotMeetNameTheKey) {
  auto teacher = tiny_bert(4, 16, 4, 1);
  auto student = tiny_bert(2, 8, 2, 2);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"features: [{type: attention_mse}]", "features.0.type"},
      {"features: [{type: attention_kl}]", "features.0.type"},
      {"features: [{type: hidden_mse}, {type: relation_kl, relation_heads: 3}]", "features.1.relation_heads"},
      {"features: [{type: relation_kl, relations: [query, answer]}]", "features.0.relations"},
      {"features: [{type: relation_kl, student_layer: 3}]", "features.0.student_layer"},
      {"features: [{type: hidden_mse, weight: -1}]", "features.0.weight"},
      {"features: [{type: hidden_mse, layers: [[3, 1]]}]", "features.0.layers"},
      {"features: [{type: hidden_l1}]", "features.0.type"},
      {"features: [{type: hidden_mse, projection: false}]", "features.0.projection"},
  };
  for (const auto& [yaml, key] : cases) {
    SCOPED_TRACE(yaml);
    try {
      objective(yaml, *student, *teacher);
      ADD_FAILURE() << "no exception";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
    }
  }
  // A student without Transformer layers.
  auto config = Config::from_string("student: {type: bilstm, embedding_dim: 16, hidden: 4}", "s.yaml");
  auto lstm = make_student(config.root().child("student"), *teacher);
  EXPECT_THROW(objective("features: [{type: hidden_mse}]", *lstm, *teacher), ConfigError);
}

TEST(FeatureTermTest, DistillStudentTrainsTheProjectionWithTheStudentAndSavesTheStudentAlone) {
  auto teacher = tiny_bert(4, 16, 4, 1);
  auto student = tiny_bert(2, 8, 2, 2);
  auto obj = objective("features: [{type: hidden_mse}]", *student, *teacher);
  DistillStudent wrapped(*student, obj);
  const auto params = wrapped.module().named_parameters();
  EXPECT_EQ(params.size(), student->module().named_parameters().size() + 2);
  EXPECT_TRUE(params.contains("objective.term0.projection.weight"));
  EXPECT_TRUE(params.contains("student.bert.embeddings.word_embeddings.weight"));
  const Batch b = tiny_batch();
  wrapped.module().train();
  EXPECT_TRUE(wrapped.forward(b).features.count("hidden.2")) << "training: the features the objective reads";
  wrapped.module().eval();
  EXPECT_FALSE(wrapped.forward(b).features.count("hidden.2")) << "evaluation: none";
  const auto dir = test::temp_dir("distill_student_save");
  wrapped.save(dir.string());
  auto back = load_classifier(dir.string());
  EXPECT_EQ(back->module().named_parameters().size(), student->module().named_parameters().size());
}

}  // namespace
}  // namespace kd
