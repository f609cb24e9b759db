// DistillEffectTest: the soft loss does what distillation is for. A fixed teacher (a small TextCNN
// trained for a few epochs on one slice of TREC-6) and two students built from the same seed, hence the
// same initial weights, trained by the same Trainer for the same steps on another slice: one with α = 1
// (kd's DistillLoss, soft term only, the teacher's logits from a KnowledgeSource) and one with α = 0
// (labels only; the teacher is never consulted). On held-out rows the α = 1 student must end much
// closer to the teacher, KL(teacher_T ‖ student_T), than the α = 0 one.
//
// Why each check is there:
//   - teacher accuracy well above chance: the teacher knows the task, so labels and teacher agree and the
//     α = 0 student is a fair comparison, not a strawman trained against the teacher; and that student
//     learns the task too;
//   - the untrained student far from the teacher: the KL is not close to 0 for any student, so
//     "closer" means something;
//   - both trained students closer than the untrained one: both trainings ran and learned (the labels
//     pull toward the teacher too), so a student that simply did not train cannot pass for either;
//   - α = 1 at most half of α = 0 (about a quarter here, whatever the seeds): the soft term moves the
//     student toward the teacher by more than the labels do. It fails if the soft term is dropped,
//     weighted by 1 − α instead of α, pushes the wrong way, or is computed against other rows' teacher
//     logits (tried: with the teacher's logits rolled by one row in each batch, the α = 1 student ends at
//     1.6 times the α = 0 student's KL).
// The KL here is computed by hand from log_softmax, not with kd's loss functions, so a loss that computes
// the wrong thing cannot grade itself.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "kd/data/label_vocab.h"
#include "kd/data/table_reader.h"
#include "kd/data/text_dataset.h"
#include "kd/eval/evaluate.h"
#include "kd/io/config.h"
#include "kd/knowledge/knowledge_source.h"
#include "kd/losses/distill_loss.h"
#include "kd/models/bilstm.h"
#include "kd/models/student_classifier.h"
#include "kd/models/text_cnn.h"
#include "kd/models/student_registry.h"
#include "kd/train/distill_pipeline.h"
#include "kd/train/trainer.h"
#include "test_paths.h"

namespace kd {
namespace {

constexpr double kTemperature = 2.0;
constexpr int64_t kMaxLength = 32;

std::vector<TextRow> slice(const std::vector<TextRow>& rows, size_t from, size_t to) {
  return std::vector<TextRow>(rows.begin() + static_cast<std::ptrdiff_t>(from),
                              rows.begin() + static_cast<std::ptrdiff_t>(to));
}

// A WordPiece vocabulary of the whole words of `rows` (lower-cased, split as BERT does): every other
// word is [UNK]. Sorted, so the ids do not depend on the order of the rows.
WordPieceTokenizer vocabulary_of(const std::vector<TextRow>& rows) {
  const std::vector<std::string> special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  const WordPieceTokenizer splitter(special, WordPieceOptions{});
  std::set<std::string> words;
  for (const auto& r : rows)
    for (const auto& w : splitter.pre_tokenize(r.texts.at(0))) words.insert(w);
  std::vector<std::string> vocab = special;
  vocab.insert(vocab.end(), words.begin(), words.end());
  return WordPieceTokenizer(vocab, WordPieceOptions{});
}

std::unique_ptr<TextClassifier> student_from(const std::string& yaml, const TextClassifier& teacher, uint64_t seed) {
  Config c = Config::from_string(yaml, "student.yaml");
  torch::manual_seed(seed);
  auto s = make_student(c.root().child("student"), teacher);
  c.check_all_used();
  return s;
}

TrainerOptions trainer_options(const std::string& dir, int64_t epochs, double lr) {
  TrainerOptions o;
  o.run_dir = dir;
  o.epochs = epochs;
  o.batch_size = 16;
  o.eval_batch_size = 256;
  o.checkpoint_every = 0;
  o.seed = 7;
  o.progress = false;
  o.optim.lr = lr;
  o.optim.warmup_ratio = 0;
  return o;
}

// Mean over rows of KL(softmax(t / T) ‖ softmax(s / T)), in float64.
double mean_kl(const torch::Tensor& teacher_logits, const torch::Tensor& student_logits) {
  const auto lt = torch::log_softmax(teacher_logits.to(torch::kFloat64) / kTemperature, -1);
  const auto ls = torch::log_softmax(student_logits.to(torch::kFloat64) / kTemperature, -1);
  return (lt.exp() * (lt - ls)).sum(-1).mean().item<double>();
}

torch::Tensor logits_on(TextClassifier& model, const TextDataset& data) {
  return evaluate(model, data, 256, /*keep_logits=*/true).logits;
}

double accuracy_on(TextClassifier& model, const TextDataset& data) {
  return evaluate(model, data, 256).confusion.accuracy();
}

TEST(DistillEffectTest, SoftLossMovesTheStudentTowardTheTeacher) {
  const auto start = std::chrono::steady_clock::now();
  TableOptions table;
  table.text_columns = {"text"};
  const auto train_rows = read_table(test::shared_data("trec6/train.tsv"), table);
  const auto test_rows = read_table(test::shared_data("trec6/test.tsv"), table);
  ASSERT_GE(train_rows.size(), 2000u);
  ASSERT_GE(test_rows.size(), 300u);
  // Disjoint slices: the teacher learns on one, the students on another, the KL is measured on rows
  // neither saw (the trainer's validation set is a third slice, although nothing selects on it).
  const auto teacher_rows = slice(train_rows, 1000, 2000), student_rows = slice(train_rows, 0, 1000);
  const auto held_out_rows = slice(test_rows, 0, 200), valid_rows = slice(test_rows, 200, 300);
  const auto tokenizer = vocabulary_of(slice(train_rows, 0, 2000));
  const auto labels = LabelVocab::build(train_rows);
  ASSERT_EQ(labels.size(), 6);
  const auto dataset = [&](const std::vector<TextRow>& rows, const std::string& name) {
    return TextDataset(rows, tokenizer, labels, kMaxLength, name);
  };
  const auto teacher_data = dataset(teacher_rows, "teacher"), student_data = dataset(student_rows, "student");
  const auto held_out = dataset(held_out_rows, "held_out"), valid = dataset(valid_rows, "valid");
  const auto dir = test::temp_dir("distill_effect");

  // The teacher: fixed once trained; its logits reach the α = 1 student through a KnowledgeSource.
  TextCnnOptions to;
  to.vocab_size = tokenizer.vocab_size();
  to.embedding_dim = 48;
  to.kernel_sizes = {1, 2, 3};
  to.filters = 48;
  to.dropout = 0.2;
  to.num_classes = labels.size();
  to.padding_idx = tokenizer.pad_id();
  torch::manual_seed(11);
  StudentClassifier teacher(std::make_shared<TextCnnImpl>(to), "textcnn", tokenizer, labels, kMaxLength);
  Trainer(teacher, trainer_options((dir / "teacher").string(), 6, 5e-3), classification_loss)
      .fit(teacher_data, valid);
  teacher.module().eval();
  const double teacher_accuracy = accuracy_on(teacher, held_out);
  const auto teacher_logits = logits_on(teacher, held_out);
  LiveTeacher knowledge(teacher);

  // Two students of another architecture, same seed and so the same initial weights.
  const std::string yaml =
      "student:\n  type: textcnn\n  embedding_dim: 24\n  kernel_sizes: [2, 3]\n  filters: 24\n"
      "  dropout: 0.1\n  init_embeddings: random\n";
  const uint64_t student_seed = 5;
  auto untrained = student_from(yaml, teacher, student_seed);
  untrained->module().eval();
  const double kl_untrained = mean_kl(teacher_logits, logits_on(*untrained, held_out));

  struct Trained {
    double kl = 0, accuracy = 0, agreement = 0;
  };
  const auto train_student = [&](double alpha) {
    auto student = student_from(yaml, teacher, student_seed);
    for (size_t i = 0; i < student->module().parameters().size(); ++i)
      EXPECT_TRUE(torch::equal(student->module().parameters()[i], untrained->module().parameters()[i]))
          << "the same seed gives the same initial weights (parameter " << i << ")";
    DistillLossOptions lo;
    lo.soft = "kl";
    lo.temperature = kTemperature;
    lo.alpha = alpha;
    const auto name = std::string("student_alpha") + (alpha > 0 ? "1" : "0");
    Trainer(*student, trainer_options((dir / name).string(), 20, 5e-3), distill_loss_fn(lo, &knowledge))
        .fit(student_data, valid);
    student->module().eval();
    const auto logits = logits_on(*student, held_out);
    Trained t;
    t.kl = mean_kl(teacher_logits, logits);
    t.accuracy = accuracy_on(*student, held_out);
    t.agreement = logits.argmax(-1).eq(teacher_logits.argmax(-1)).to(torch::kFloat64).mean().item<double>();
    return t;
  };
  const Trained soft = train_student(1.0), hard = train_student(0.0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("[ distill  ] teacher held-out accuracy %.3f; KL(teacher_T || student_T) on %zu held-out rows, T = %g:"
              " untrained %.4f, alpha=0 %.4f, alpha=1 %.4f (ratio %.2f); argmax agreement with the teacher:"
              " alpha=0 %.3f, alpha=1 %.3f; accuracy alpha=0 %.3f, alpha=1 %.3f; %.1f s\n",
              teacher_accuracy, held_out.size(), kTemperature, kl_untrained, hard.kl, soft.kl, soft.kl / hard.kl,
              hard.agreement, soft.agreement, hard.accuracy, soft.accuracy, seconds);

  const double chance = 1.0 / static_cast<double>(labels.size());
  EXPECT_GT(teacher_accuracy, 3 * chance) << "the teacher has learned the task";
  EXPECT_GT(hard.accuracy, 2 * chance) << "the labels-only student has learned the task";
  EXPECT_GT(kl_untrained, 0.1) << "an untrained student is far from the teacher";
  EXPECT_LT(hard.kl, kl_untrained) << "training on the labels moves toward a teacher that learned them";
  EXPECT_LT(soft.kl, kl_untrained);
  EXPECT_LE(soft.kl, 0.5 * hard.kl) << "the soft loss moves the student toward the teacher";
}

}  // namespace
}  // namespace kd
