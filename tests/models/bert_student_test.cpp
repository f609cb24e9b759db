// BertStudentTest: the Transformer student kind (`student: {type: bert}`) against a tiny BERT teacher:
// layers copied from the chosen teacher layers, the narrower student's tables along the teacher's
// principal axes, every impossible setting a ConfigError naming its key, and a saved student that
// load_classifier reads back with the same logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/student_registry.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "tiny_bert.h"

namespace kd {
namespace {

std::unique_ptr<BertTextClassifier> tiny_teacher() { return test::tiny_bert(4, 16, 4, 5, {"neg", "pos", "mid"}); }

std::unique_ptr<BertTextClassifier> build(const std::string& yaml, const TextClassifier& teacher) {
  auto config = Config::from_string(yaml, "student.yaml");
  auto model = make_student(config.root().child("student"), teacher);
  auto* bert = dynamic_cast<BertTextClassifier*>(model.get());
  EXPECT_NE(bert, nullptr);
  model.release();
  return std::unique_ptr<BertTextClassifier>(bert);
}

torch::Tensor param(TextClassifier& m, const std::string& name) { return m.module().named_parameters()[name]; }

Batch tiny_batch() { return test::tiny_bert_batch(); }

TEST(BertStudentTest, StartsFromEveryOtherTeacherLayerAndItsEmbeddingsAndHead) {
  auto teacher = tiny_teacher();
  auto s = build("student: {type: bert, layers: 2}", *teacher);
  EXPECT_EQ(s->type(), "bert");
  EXPECT_EQ(s->encoder_shape().layers, 2);
  EXPECT_EQ(s->encoder_shape().hidden, 16);
  EXPECT_EQ(s->labels().labels(), teacher->labels().labels());
  EXPECT_EQ(s->max_length(), 20);
  for (const auto& [sl, tl] : std::vector<std::pair<int, int>>{{0, 0}, {1, 2}}) {
    for (const char* w : {"attention.self.query.weight", "output.dense.bias", "intermediate.dense.weight"}) {
      const std::string sn = "bert.encoder.layer." + std::to_string(sl) + "." + w;
      const std::string tn = "bert.encoder.layer." + std::to_string(tl) + "." + w;
      EXPECT_TRUE(torch::equal(param(*s, sn), param(*teacher, tn))) << sn << " vs " << tn;
    }
  }
  for (const char* w : {"bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                        "bert.pooler.dense.weight", "classifier.weight"})
    EXPECT_TRUE(torch::equal(param(*s, w), param(*teacher, w))) << w;
}

TEST(BertStudentTest, LayerMaps) {
  auto teacher = tiny_teacher();
  auto uniform = build("student: {type: bert, layers: 2, init_layers: uniform}", *teacher);  // 2, 4 (1-based)
  EXPECT_TRUE(torch::equal(param(*uniform, "bert.encoder.layer.0.output.dense.weight"),
                           param(*teacher, "bert.encoder.layer.1.output.dense.weight")));
  EXPECT_TRUE(torch::equal(param(*uniform, "bert.encoder.layer.1.output.dense.weight"),
                           param(*teacher, "bert.encoder.layer.3.output.dense.weight")));
  auto listed = build("student: {type: bert, layers: 2, init_layers: [3, 0]}", *teacher);
  EXPECT_TRUE(torch::equal(param(*listed, "bert.encoder.layer.0.output.dense.weight"),
                           param(*teacher, "bert.encoder.layer.3.output.dense.weight")));
  // All four layers, in order: the student is the teacher.
  auto whole = build("student: {type: bert, layers: 4, init_layers: first}", *teacher);
  whole->module().eval();
  teacher->module().eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(whole->forward(tiny_batch()).logits, teacher->forward(tiny_batch()).logits));
}

TEST(BertStudentTest, NarrowerStudentStartsFromTheTeacherTablesAlongTheirPrincipalAxes) {
  auto teacher = tiny_teacher();
  auto s = build("student: {type: bert, layers: 2, hidden: 8, heads: 2, init_embeddings: teacher_pca}", *teacher);
  EXPECT_EQ(s->encoder_shape().hidden, 8);
  EXPECT_EQ(s->encoder_shape().heads, 2);
  EXPECT_EQ(s->model()->bert->options().intermediate_size, 16) << "the teacher's ratio (2x) times the width";
  const auto words = param(*teacher, "bert.embeddings.word_embeddings.weight").to(torch::kFloat64);  // (V, 16)
  const auto table = param(*s, "bert.embeddings.word_embeddings.weight").to(torch::kFloat64);       // (V, 8)
  // Principal axes: the columns are uncorrelated and their variances fall, and they keep more of the
  // teacher table's variance than any other 8 directions would (at least the top 8 eigenvalues' share).
  const auto centred = words - words.mean(0, true);
  const auto eig = std::get<0>(torch::linalg_eigh(centred.t().matmul(centred), "L")).flip(0);  // descending
  const auto var = (table - table.mean(0, true)).pow(2).sum(0);                                 // (8)
  EXPECT_NEAR(var.sum().item<double>(), eig.slice(0, 0, 8).sum().item<double>(), 1e-4 * eig.sum().item<double>());
  for (int i = 0; i + 1 < 8; ++i) EXPECT_GE(var[i].item<double>(), var[i + 1].item<double>() * (1 - 1e-4));
  // Positions along the same axes: the rank-8 projection's error is the residual of the table, not more.
  const auto pos_t = param(*teacher, "bert.embeddings.position_embeddings.weight").to(torch::kFloat64);  // (P, 16)
  const auto pos_s = param(*s, "bert.embeddings.position_embeddings.weight").to(torch::kFloat64);        // (P, 8)
  EXPECT_EQ(pos_s.sizes(), (std::vector<int64_t>{24, 8}));
  EXPECT_LE(pos_s.norm().item<double>(), pos_t.norm().item<double>() * (1 + 1e-6)) << "an orthogonal projection";
}

// A smaller feed-forward at the teacher's width keeps, in each copied layer, the teacher's neurons of
// largest ‖w_in‖·‖w_out‖, in order; everything else of the layer is the teacher's unchanged.
TEST(BertStudentTest, SmallerFeedForwardKeepsTheTeachersStrongestNeurons) {
  auto teacher = tiny_teacher();  // intermediate 32
  auto s = build("student: {type: bert, layers: 2, intermediate: 12, init_layers: [1, 3]}", *teacher);
  for (const auto& [sl, tl] : std::vector<std::pair<int, int>>{{0, 1}, {1, 3}}) {
    const std::string sp = "bert.encoder.layer." + std::to_string(sl) + ".", tp = "bert.encoder.layer." + std::to_string(tl) + ".";
    const auto w_in = param(*teacher, tp + "intermediate.dense.weight");  // (32, 16)
    const auto w_out = param(*teacher, tp + "output.dense.weight");      // (16, 32)
    const auto score = (w_in.norm(2, {1}) * w_out.norm(2, {0})).detach();
    // Expected neurons, computed the long way: every score of a kept neuron beats every dropped one.
    std::vector<int64_t> order(32);
    for (int64_t i = 0; i < 32; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a].item<float>() > score[b].item<float>(); });
    std::vector<int64_t> kept(order.begin(), order.begin() + 12);
    std::sort(kept.begin(), kept.end());
    const auto idx = torch::tensor(kept, torch::kInt64);
    EXPECT_EQ(param(*s, sp + "intermediate.dense.weight").sizes(), (std::vector<int64_t>{12, 16}));
    EXPECT_TRUE(torch::equal(param(*s, sp + "intermediate.dense.weight"), w_in.index_select(0, idx)));
    EXPECT_TRUE(torch::equal(param(*s, sp + "intermediate.dense.bias"),
                             param(*teacher, tp + "intermediate.dense.bias").index_select(0, idx)));
    EXPECT_TRUE(torch::equal(param(*s, sp + "output.dense.weight"), w_out.index_select(1, idx)));
    for (const char* w : {"output.dense.bias", "attention.self.key.weight", "attention.output.dense.weight"})
      EXPECT_TRUE(torch::equal(param(*s, sp + w), param(*teacher, tp + w))) << w;
  }
  // Keeping every neuron is the plain copy.
  auto all = build("student: {type: bert, layers: 2, intermediate: 32, init_layers: [1, 3]}", *teacher);
  EXPECT_TRUE(torch::equal(param(*all, "bert.encoder.layer.1.intermediate.dense.weight"),
                           param(*teacher, "bert.encoder.layer.3.intermediate.dense.weight")));
}

TEST(BertStudentTest, ImpossibleSettingsNameTheirKey) {
  auto teacher = tiny_teacher();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"student: {type: bert, layers: 0}", "layers"},
      {"student: {type: bert, layers: 2, init_layers: [0, 4]}", "init_layers"},
      {"student: {type: bert, layers: 2, init_layers: [1]}", "init_layers"},
      {"student: {type: bert, layers: 2, init_layers: backwards}", "init_layers"},
      {"student: {type: bert, hidden: 10, heads: 4}", "heads"},
      {"student: {type: bert, hidden: 8, heads: 2, init_layers: first}", "init_layers"},
      {"student: {type: bert, hidden: 8, heads: 2, init_embeddings: teacher}", "init_embeddings"},
      {"student: {type: bert, hidden: 32, heads: 4, init_embeddings: teacher_pca}", "hidden"},
      {"student: {type: bert, layers: 5}", "init_layers"},
      {"student: {type: bert, dropout: 1.5}", "dropout"},
      {"student: {type: bert, intermediate: 40, init_layers: first}", "init_layers"},  // more neurons than the teacher
  };
  for (const auto& [yaml, key] : cases) {
    SCOPED_TRACE(yaml);
    try {
      build(yaml, *teacher);
      ADD_FAILURE() << "no exception";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("'student." + key + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(BertStudentTest, NeedsABertTeacher) {
  auto teacher = tiny_teacher();
  auto lstm = make_student(Config::from_string("student: {type: bilstm, embedding_dim: 16, hidden: 4}", "s.yaml")
                               .root()
                               .child("student"),
                           *teacher);
  try {
    build("student: {type: bert}", *lstm);
    ADD_FAILURE() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("BERT teacher"), std::string::npos) << e.what();
  }
}

TEST(BertStudentTest, SavedStudentLoadsBackWithTheSameLogits) {
  auto teacher = tiny_teacher();
  torch::manual_seed(3);
  auto s = build("student: {type: bert, layers: 1, hidden: 8, heads: 2, intermediate: 12, init_embeddings: random}",
                 *teacher);
  const auto dir = test::temp_dir("bert_student_save");
  s->save(dir.string());
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "labels.json", "kd.json"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  auto back = load_classifier(dir.string());
  EXPECT_EQ(back->type(), "bert");
  EXPECT_EQ(back->encoder_shape().hidden, 8);
  EXPECT_EQ(back->max_length(), 20);
  s->module().eval();
  back->module().eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(s->forward(tiny_batch()).logits, back->forward(tiny_batch()).logits));
  EXPECT_GT(s->flops_per_example(10), 0);
  EXPECT_LT(s->flops_per_example(10), teacher->flops_per_example(10));
}

}  // namespace
}  // namespace kd
