// The Trainer's guard against a diverging run: a NaN or Inf loss stops training with an error naming the
// step, and the last good resume checkpoint is left intact. On a GPU, distillation there ends where it
// ends on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include <torch/cuda.h>

#include "expect_error.h"
#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/knowledge/knowledge_source.h"
#include "kd/train/distill_pipeline.h"
#include "kd/train/trainer.h"
#include "kd/util/device.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

// Bag of embeddings → linear: the smallest TextClassifier that trains.
class TinyClassifier : public TextClassifier {
 public:
  TinyClassifier()
      : tokenizer_({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "film"}, WordPieceOptions{}),
        labels_({"neg", "pos"}) {
    net_ = std::make_shared<torch::nn::Module>();
    emb_ = net_->register_module("emb", torch::nn::Embedding(7, 4));
    out_ = net_->register_module("out", torch::nn::Linear(4, 2));
  }
  ModelOutput forward(const Batch& batch, const FeatureRequest&) override {
    auto mask = batch.attention_mask.unsqueeze(-1).to(torch::kFloat32);      // (B, T, 1)
    auto mean = (emb_(batch.input_ids) * mask).sum(1) / mask.sum(1);        // (B, 4)
    return {out_(mean), {}};
  }
  torch::nn::Module& module() override { return *net_; }
  const WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return 8; }
  std::string type() const override { return "tiny"; }
  void save(const std::string& dir) const override {
    save_module_state(*net_, (fs::path(dir) / "model.safetensors").string());
  }

 private:
  WordPieceTokenizer tokenizer_;
  LabelVocab labels_;
  std::shared_ptr<torch::nn::Module> net_;
  torch::nn::Embedding emb_{nullptr};
  torch::nn::Linear out_{nullptr};
};

TextDataset make_data(const TinyClassifier& model, int n) {
  std::vector<TextRow> rows;
  for (int i = 0; i < n; ++i) {
    TextRow r;
    r.texts = {i % 2 ? "good film" : "bad film"};
    r.label = i % 2 ? "pos" : "neg";
    r.row = i;
    r.line = i + 2;
    rows.push_back(r);
  }
  return TextDataset(rows, model.tokenizer(), model.labels(), model.max_length(), "mem");
}

// Quiet options for the tiny classifier's runs in `dir`.
TrainerOptions tiny_options(const fs::path& dir, int64_t epochs, int64_t batch_size, double lr) {
  TrainerOptions o;
  o.run_dir = dir.string();
  o.epochs = epochs;
  o.batch_size = batch_size;
  o.progress = false;
  o.optim.lr = lr;
  return o;
}

// Unlabelled rows (-1) are left out of the cross-entropy; a batch with none labelled gives 0 and a zero
// gradient, not cross_entropy's NaN (which the Trainer would skip, blaming the learning rate).
TEST(TrainerTest, ClassificationLossLeavesUnlabelledRowsOutAndIsZeroWithoutLabels) {
  auto logits = torch::randn({4, 3}, torch::kFloat64).requires_grad_(true);
  Batch batch;
  batch.labels = torch::tensor({2, -1, 0, -1}, torch::kInt64);
  const auto mixed = classification_loss(ModelOutput{logits, {}}, batch);
  const auto log_p = torch::log_softmax(logits.detach(), -1);
  const double expected = -(log_p[0][2].item<double>() + log_p[2][0].item<double>()) / 2;
  EXPECT_NEAR(mixed.item<double>(), expected, 1e-12);

  batch.labels = torch::full({4}, -1, torch::kInt64);
  const auto none = classification_loss(ModelOutput{logits, {}}, batch);
  EXPECT_EQ(none.item<double>(), 0.0);
  none.backward();
  ASSERT_TRUE(logits.grad().defined());
  EXPECT_EQ(logits.grad().abs().max().item<double>(), 0.0);
}

TEST(TrainerTest, NonFiniteLossStopsNamingTheStepAndKeepsTheLastCheckpoint) {
  for (double bad : {std::nan(""), static_cast<double>(INFINITY)}) {
    const auto dir = test::temp_dir("trainer_nan");
    TinyClassifier model;
    auto data = make_data(model, 32);
    TrainerOptions o = tiny_options(dir, 2, 4, 1e-2);
    o.checkpoint_every = 2;
    int calls = 0;
    LossFn loss = [&](const ModelOutput& out, const Batch& batch) {
      auto l = classification_loss(out, batch);
      return ++calls == 5 ? l * bad : l;  // the 5th batch diverges
    };
    Trainer trainer(model, o, loss);
    try {
      trainer.fit(data, data);
      FAIL() << "expected a TrainError";
    } catch (const TrainError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::isnan(bad) ? "NaN" : "Inf"), std::string::npos) << msg;
      EXPECT_NE(msg.find("step 4"), std::string::npos) << msg;
    }
    const auto state = read_json((dir / "last" / "trainer_state.json").string());
    EXPECT_EQ(state["step"].get<int64_t>(), 4) << "the checkpoint from before the bad step is kept";
    EXPECT_TRUE(fs::exists(dir / "last" / "model.safetensors"));
  }
}

// Within train.max_nonfinite_steps a bad step is skipped: the parameters the next batch sees are the ones
// the bad batch saw (no update), the run finishes with finite weights; one bad step more stops it.
TEST(TrainerTest, NonFiniteStepsWithinTheAllowanceAreSkippedAndOneMoreStops) {
  for (int64_t bad_steps : {2, 3}) {
    const auto dir = test::temp_dir("trainer_nan_skip");
    TinyClassifier model;
    auto data = make_data(model, 32);
    TrainerOptions o = tiny_options(dir, 2, 4, 1e-2);
    o.optim.clip_norm = 1.0;
    o.max_nonfinite_steps = 2;
    int calls = 0;
    std::map<int, torch::Tensor> seen;  // call -> the parameters that batch saw
    LossFn loss = [&](const ModelOutput& out, const Batch& batch) {
      ++calls;
      seen[calls] = torch::cat({model.module().parameters()[0].detach().flatten().clone(),
                                model.module().parameters()[1].detach().flatten().clone()});
      auto l = classification_loss(out, batch);
      if (calls == 3) return l * std::nan("");         // a NaN loss
      if (calls == 7) return l * static_cast<double>(INFINITY);  // an Inf loss
      if (calls == 11 && bad_steps == 3) return l * std::nan("");
      return l;
    };
    Trainer trainer(model, o, loss);
    if (bad_steps == 3) {
      EXPECT_THROW(trainer.fit(data, data), TrainError);
      continue;
    }
    const auto r = trainer.fit(data, data);
    EXPECT_EQ(r.steps, 16);
    EXPECT_TRUE(torch::equal(seen[3], seen[4])) << "the NaN step changed the parameters";
    EXPECT_TRUE(torch::equal(seen[7], seen[8])) << "the Inf step changed the parameters";
    EXPECT_FALSE(torch::equal(seen[4], seen[5])) << "a good step did not change the parameters";
    for (const auto& p : model.module().parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  }
}

TEST(TrainerTest, StopWhenEndsAfterThatStepWithoutEvaluationOrCheckpoint) {
  const auto dir = test::temp_dir("trainer_stop_when");
  TinyClassifier model;
  auto data = make_data(model, 32);
  TrainerOptions o;
  o.run_dir = dir.string();
  o.epochs = 2;
  o.batch_size = 4;
  o.checkpoint_every = 5;
  o.eval_every = 5;
  o.progress = false;
  std::vector<int64_t> asked;
  o.stop_when = [&](int64_t steps) {
    asked.push_back(steps);
    return steps == 3;
  };
  const auto r = Trainer(model, o, classification_loss).fit(data, data);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(asked, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(r.history.empty()) << "no evaluation";
  EXPECT_FALSE(fs::exists(dir / "last")) << "no checkpoint";
}

// Scheduled losses read TrainingProgress: before the micro-batches of step k it is k / steps planned.
TEST(TrainerTest, ReportsItsProgressBeforeEachStep) {
  const auto dir = test::temp_dir("trainer_progress");
  TinyClassifier model;
  auto data = make_data(model, 16);
  TrainerOptions o;
  o.run_dir = dir.string();
  o.epochs = 2;
  o.batch_size = 4;
  o.grad_accum = 2;  // 2 steps per epoch, 4 in all, each of two loss calls
  o.eval_every = 0;
  o.progress = false;
  o.training_progress = std::make_shared<TrainingProgress>();
  std::vector<double> seen;
  auto progress = o.training_progress;
  const auto r = Trainer(model, o, [&](const ModelOutput& out, const Batch& b) {
                   seen.push_back(progress->fraction);
                   return classification_loss(out, b);
                 }).fit(data, data);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(seen, (std::vector<double>{0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75}));
}

TEST(TrainerTest, HistoryRecordsTheTrainingLossBetweenEvaluations) {
  const auto dir = test::temp_dir("trainer_history");
  TinyClassifier model;
  auto data = make_data(model, 32);
  TrainerOptions o = tiny_options(dir, 3, 8, 5e-2);
  o.optim.warmup_ratio = 0;
  auto r = Trainer(model, o, classification_loss).fit(data, data);
  ASSERT_EQ(r.history.size(), 3u);
  for (const auto& h : r.history) EXPECT_GT(h.train_loss, 0.0);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss) << "an easy task: the loss falls";
}

// Without a GPU, asking for CUDA is the one-line ConfigError that kd's --device gives, never a silent CPU
// run. (With one there is no refusal to check: skipped.)
TEST(TrainerTest, AskingForCudaWithoutADeviceIsRefused) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible: there is no refusal to check";
  test::expect_error<ConfigError>([] { (void)parse_device("cuda"); },
                                  {"--device cuda", "no CUDA device is visible", "use --device cpu"});
}

// With a GPU: the student is moved there by the trainer, the live teacher runs there, the loss and the
// evaluations are computed there, and two epochs end with the CPU run's weights and losses. Without one:
// skipped, not passed.
TEST(TrainerTest, DistillingOnCudaMatchesTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  struct Run {
    std::vector<EvalRecord> history;
    std::vector<torch::Tensor> params;  // on the CPU
    torch::Device device = torch::kCPU;
  };
  auto run = [](const torch::Device& device) {
    const auto dir = test::temp_dir(std::string("trainer_device_") + (device.is_cuda() ? "cuda" : "cpu"));
    torch::manual_seed(5);
    TinyClassifier teacher, student;  // the same CPU initialisation for both runs
    teacher.module().to(device);
    auto data = make_data(student, 32);
    TrainerOptions o;
    o.run_dir = dir.string();
    o.epochs = 2;
    o.batch_size = 4;
    o.eval_every = 4;
    o.checkpoint_every = 3;
    o.progress = false;
    o.optim.lr = 1e-2;
    o.device = device;
    DistillLossOptions lo;
    lo.alpha = 0.5;
    LiveTeacher knowledge(teacher);
    const TrainResult r = Trainer(student, o, distill_loss_fn(lo, &knowledge)).fit(data, data);
    EXPECT_TRUE(fs::exists(dir / "best" / "model.safetensors"));
    EXPECT_TRUE(fs::exists(dir / "last" / "model.safetensors"));
    Run out;
    out.history = r.history;
    out.device = module_device(student.module());
    for (const auto& p : student.module().parameters()) out.params.push_back(p.detach().to(torch::kCPU));
    return out;
  };
  const Run cpu = run(torch::kCPU);
  const Run cuda = run(torch::Device(torch::kCUDA));
  EXPECT_TRUE(cuda.device.is_cuda()) << "the trainer moves the model to TrainerOptions::device";
  EXPECT_TRUE(cpu.device.is_cpu());
  ASSERT_EQ(cpu.history.size(), cuda.history.size());
  for (size_t i = 0; i < cpu.history.size(); ++i) {
    EXPECT_NEAR(cpu.history[i].train_loss, cuda.history[i].train_loss, 1e-4) << i;
    EXPECT_NEAR(cpu.history[i].loss, cuda.history[i].loss, 1e-4) << i;
    EXPECT_EQ(cpu.history[i].accuracy, cuda.history[i].accuracy) << i;
  }
  ASSERT_EQ(cpu.params.size(), cuda.params.size());
  for (size_t i = 0; i < cpu.params.size(); ++i)
    EXPECT_TRUE(torch::allclose(cpu.params[i], cuda.params[i], 1e-4, 1e-5)) << "parameter " << i;
}

}  // namespace
}  // namespace kd
