// StudentRegistryTest: building students from a config section against a teacher — sizes and labels
// taken from the teacher, embeddings copied from it (with a projection when widths differ), and a
// ConfigError naming the key for every impossible setting. BertTextClassifier's FLOPs and embeddings on the
// real all-MiniLM-L6-v2 checkpoint.
#include "kd/models/student_registry.h"

#include <gtest/gtest.h>

#include "kd/error.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/bilstm.h"
#include "kd/models/student_classifier.h"
#include "kd/models/text_cnn.h"
#include "../test_paths.h"  // tests/ is not on the include path

namespace {

// A stand-in teacher: a 30-token vocabulary, two labels, max_length 12 and an 8-wide embedding table
// with two rows more than the tokenizer has (as a model vocabulary padded past the tokenizer's).
class FakeTeacher : public kd::TextClassifier {
 public:
  FakeTeacher() : tokenizer_(vocab(), {}), labels_({"neg", "pos"}) {
    torch::manual_seed(11);
    table_ = torch::randn({32, 8});
  }
  kd::ModelOutput forward(const kd::Batch&, const kd::FeatureRequest&) override { throw std::logic_error("not used"); }
  torch::nn::Module& module() override { return module_; }
  const kd::WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const kd::LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return 12; }
  std::string type() const override { return "fake"; }
  void save(const std::string&) const override {}
  torch::Tensor word_embeddings() const override { return table_; }

  torch::Tensor table_;

 private:
  static std::vector<std::string> vocab() {
    std::vector<std::string> v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    while (v.size() < 30) v.push_back("w" + std::to_string(v.size()));
    return v;
  }
  kd::WordPieceTokenizer tokenizer_;
  kd::LabelVocab labels_;
  torch::nn::Module module_;
};

std::unique_ptr<kd::StudentClassifier> build(const std::string& yaml, const kd::TextClassifier& teacher) {
  auto config = kd::Config::from_string(yaml, "students.yaml");
  auto model = kd::make_student(config.root().child("student"), teacher);
  auto* student = dynamic_cast<kd::StudentClassifier*>(model.get());
  EXPECT_NE(student, nullptr);
  model.release();
  return std::unique_ptr<kd::StudentClassifier>(student);
}

void expect_config_error(const std::string& yaml, const std::string& key) {
  FakeTeacher teacher;
  SCOPED_TRACE(yaml);
  try {
    build(yaml, teacher);
    ADD_FAILURE() << "no exception";
  } catch (const kd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'student." + key + "'"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace

TEST(StudentRegistryTest, KnowsEveryStudentKind) {
  EXPECT_EQ(kd::student_registry().known(), "bert, bilstm, textcnn");
}

TEST(StudentRegistryTest, TakesVocabularyLabelsAndLengthFromTheTeacher) {
  FakeTeacher teacher;
  auto s = build("student: {type: bilstm, embedding_dim: 8, hidden: 4, pooling: last}", teacher);
  EXPECT_EQ(s->type(), "bilstm");
  EXPECT_EQ(s->labels().labels(), teacher.labels().labels());
  EXPECT_EQ(s->max_length(), 12);
  EXPECT_EQ(s->tokenizer().vocab(), teacher.tokenizer().vocab());
  const auto& o = std::dynamic_pointer_cast<kd::BiLstmImpl>(s->net())->options();
  EXPECT_EQ(o.vocab_size, 30);
  EXPECT_EQ(o.num_classes, 2);
  EXPECT_EQ(o.padding_idx, 0);
  EXPECT_EQ(o.hidden, 4);
  EXPECT_EQ(o.layers, 1);
  EXPECT_EQ(o.pooling, "last");
  EXPECT_EQ(o.projection, 0);
}

TEST(StudentRegistryTest, EmbeddingsStartFromTheTeacherWhenWidthsMatch) {
  FakeTeacher teacher;
  for (const char* yaml : {"student: {type: bilstm, embedding_dim: 8, hidden: 4}",
                           "student: {type: textcnn, embedding_dim: 8, kernel_sizes: [2, 3]}"}) {
    auto s = build(yaml, teacher);
    ASSERT_EQ(s->word_embeddings().sizes(), (std::vector<int64_t>{30, 8}));
    EXPECT_TRUE(torch::equal(s->word_embeddings(), teacher.table_.slice(0, 0, 30)));
    EXPECT_EQ(s->options_json()["projection"], 0);
  }
}

TEST(StudentRegistryTest, DifferentWidthKeepsTheTeacherTableAndLearnsAProjection) {
  FakeTeacher teacher;
  auto lstm = build("student: {type: bilstm, embedding_dim: 5, hidden: 3}", teacher);
  EXPECT_EQ(lstm->options_json()["projection"], 8);
  EXPECT_TRUE(torch::equal(lstm->word_embeddings(), teacher.table_.slice(0, 0, 30)));
  const auto ids = torch::tensor({{2, 7, 9, 3}}, torch::kInt64);
  EXPECT_EQ(std::dynamic_pointer_cast<kd::BiLstmImpl>(lstm->net())->embed(ids).sizes(), (std::vector<int64_t>{1, 4, 5}));
  EXPECT_EQ(std::dynamic_pointer_cast<kd::BiLstmImpl>(lstm->net())->projection->weight.sizes(), (std::vector<int64_t>{5, 8}));

  auto cnn = build("student: {type: textcnn, embedding_dim: 6, kernel_sizes: [2], filters: 3}", teacher);
  EXPECT_EQ(std::dynamic_pointer_cast<kd::TextCnnImpl>(cnn->net())->embed(ids).sizes(), (std::vector<int64_t>{1, 4, 6}));
  EXPECT_TRUE(torch::equal(cnn->word_embeddings(), teacher.table_.slice(0, 0, 30)));
  cnn->module().eval();
  kd::Batch b;
  b.input_ids = ids;
  b.attention_mask = torch::ones_like(ids);
  EXPECT_EQ(cnn->forward(b).logits.sizes(), (std::vector<int64_t>{1, 2}));
}

TEST(StudentRegistryTest, PcaInitNarrowsTheTeacherTableAlongItsPrincipalAxes) {
  FakeTeacher teacher;  // 30 x 8 table
  auto s = build("student: {type: bilstm, embedding_dim: 3, hidden: 3, init_embeddings: teacher_pca}", teacher);
  EXPECT_EQ(s->options_json()["projection"], 0) << "no full-width table is kept";
  const auto w = s->word_embeddings().to(torch::kFloat64);  // (30, 3)
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{30, 3}));
  // Principal coordinates: centred, mutually uncorrelated, variance falling from the first axis on,
  // and the variance they hold equals the top eigenvalues of the teacher table's covariance.
  EXPECT_LT(w.mean(0).abs().max().item<double>(), 1e-5);
  const auto cov = w.t().matmul(w);  // (3, 3)
  const auto off = cov - torch::diag(torch::diag(cov));
  EXPECT_LT(off.abs().max().item<double>(), 1e-3 * cov.diag().max().item<double>());
  EXPECT_GE(cov[0][0].item<double>(), cov[1][1].item<double>());
  EXPECT_GE(cov[1][1].item<double>(), cov[2][2].item<double>());
  auto t = teacher.table_.slice(0, 0, 30).to(torch::kFloat64);
  t = t - t.mean(0, true);
  const auto eig = std::get<0>(torch::linalg_eigh(t.t().matmul(t)));  // ascending
  EXPECT_NEAR(cov.diag().sum().item<double>(), eig.slice(0, 5, 8).sum().item<double>(),
              1e-4 * eig.sum().item<double>());
  expect_config_error("student: {type: bilstm, embedding_dim: 9, init_embeddings: teacher_pca}", "embedding_dim");
}

TEST(StudentRegistryTest, RandomInitKeepsTheStudentsOwnWidth) {
  FakeTeacher teacher;
  auto s = build("student: {type: bilstm, embedding_dim: 5, hidden: 3, init_embeddings: random}", teacher);
  EXPECT_EQ(s->options_json()["projection"], 0);
  EXPECT_EQ(s->word_embeddings().sizes(), (std::vector<int64_t>{30, 5}));
}

TEST(StudentRegistryTest, ImpossibleSettingsNameTheKey) {
  expect_config_error("student: {embedding_dim: 4}", "type");
  expect_config_error("student: {type: gru}", "type");
  expect_config_error("student: {type: bilstm, embedding_dim: 0}", "embedding_dim");
  expect_config_error("student: {type: bilstm, hidden: 0}", "hidden");
  expect_config_error("student: {type: bilstm, layers: 0}", "layers");
  expect_config_error("student: {type: bilstm, pooling: attention}", "pooling");
  expect_config_error("student: {type: bilstm, dropout: 1.0}", "dropout");
  expect_config_error("student: {type: bilstm, dropout: -0.1}", "dropout");
  expect_config_error("student: {type: bilstm, init_embeddings: glove}", "init_embeddings");
  expect_config_error("student: {type: textcnn, embedding_dim: -3}", "embedding_dim");
  expect_config_error("student: {type: textcnn, kernel_sizes: [3, 0]}", "kernel_sizes");
  expect_config_error("student: {type: textcnn, kernel_sizes: [3, 13]}", "kernel_sizes");  // max_length 12
  expect_config_error("student: {type: textcnn, kernel_sizes: []}", "kernel_sizes");
  expect_config_error("student: {type: textcnn, filters: 0}", "filters");
  expect_config_error("student: {type: textcnn, dropout: 1.5}", "dropout");
}

TEST(StudentRegistryTest, BertTextClassifierFlopsAndEmbeddings) {
  kd::BertTextClassifierOptions o;
  o.path = kd::test::model_dir();
  auto teacher = kd::BertTextClassifier::from_pretrained(o, kd::LabelVocab({"neg", "pos"}));
  // all-MiniLM-L6-v2: L = 6, H = 384, I = 1536, 2 classes, with pooler. At T = 16, per layer
  // 4*16*384^2 + 2*16^2*384 + 2*16*384*1536 = 28,508,160 multiply-adds.
  const double T = 16, H = 384, I = 1536, L = 6;
  const double expected = 2 * (L * (4 * T * H * H + 2 * T * T * H + 2 * T * H * I) + H * H + H * 2);
  EXPECT_DOUBLE_EQ(expected, 342394368.0);
  EXPECT_DOUBLE_EQ(teacher->flops_per_example(16), expected);
  EXPECT_GT(teacher->flops_per_example(16), 3.0e8);
  EXPECT_LT(teacher->flops_per_example(16), 4.0e8);
  // Attention grows with T^2: doubling T more than doubles the count.
  EXPECT_GT(teacher->flops_per_example(32), 2 * teacher->flops_per_example(16));

  const auto table = teacher->word_embeddings();
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{30522, 384}));
  const auto named = teacher->module().named_parameters();
  EXPECT_TRUE(table.is_same(named["bert.embeddings.word_embeddings.weight"]));

  // A BiLSTM student of the teacher's width starts from exactly its rows.
  auto config = kd::Config::from_string("student: {type: bilstm, embedding_dim: 384, hidden: 8}");
  auto student = kd::make_student(config.root().child("student"), *teacher);
  EXPECT_TRUE(torch::equal(student->word_embeddings(), table.slice(0, 0, teacher->tokenizer().vocab_size())));
  EXPECT_EQ(student->max_length(), teacher->max_length());
}
