#include "kd/eval/model_profile.h"

#include <gtest/gtest.h>

#include <limits>

#include <chrono>
#include <cmath>
#include <fstream>

#include "kd/error.h"
#include "kd/train/trainer.h"
#include "test_paths.h"

namespace kd {
namespace {

// A tiny classifier with a known size: embedding (10, 4) + linear (4 -> 2) = 40 + 8 + 2 = 50 parameters.
struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl() {
    emb = register_module("emb", torch::nn::Embedding(10, 4));
    out = register_module("out", torch::nn::Linear(4, 2));
  }
  torch::nn::Embedding emb{nullptr};
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(TinyNet);

class FakeClassifier : public TextClassifier {
 public:
  FakeClassifier()
      : tokenizer_({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e"}, {}),
        labels_(std::vector<std::string>{"neg", "pos"}) {}
  ModelOutput forward(const Batch& batch, const FeatureRequest&) override {
    // Masked mean of the embeddings, then the linear head.
    auto mask = batch.attention_mask.unsqueeze(-1).to(torch::kFloat);         // (B, T, 1)
    auto pooled = (net_->emb(batch.input_ids) * mask).sum(1) / mask.sum(1);  // (B, 4)
    ModelOutput o;
    o.logits = net_->out(pooled);  // (B, 2)
    return o;
  }
  torch::nn::Module& module() override { return *net_; }
  const WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return 16; }
  std::string type() const override { return "fake"; }
  void save(const std::string& dir) const override { save_module_state(*net_, dir + "/model.safetensors"); }
  // Embedding lookup is free; the mean costs one add per element, the head 2 × 4 × 2 (+ bias).
  double flops_per_example(double tokens) const override { return tokens * 4 + 2 * 4 * 2 + 2; }

 private:
  TinyNet net_;
  WordPieceTokenizer tokenizer_;
  LabelVocab labels_;
};

// Writes its name to a shared log at every forward pass, to see the order of passes.
class LoggingClassifier : public FakeClassifier {
 public:
  LoggingClassifier(char name, std::string* log) : name_(name), log_(log) {}
  ModelOutput forward(const Batch& batch, const FeatureRequest& features) override {
    log_->push_back(name_);
    return FakeClassifier::forward(batch, features);
  }

 private:
  char name_;
  std::string* log_;
};

TextDataset sample(const std::vector<int64_t>& lengths) {
  std::vector<TextExample> ex;
  for (size_t i = 0; i < lengths.size(); ++i) {
    TextExample e;
    e.encoding.ids.push_back(2);
    for (int64_t t = 2; t < lengths[i]; ++t) e.encoding.ids.push_back(5 + (t + static_cast<int64_t>(i)) % 5);
    e.encoding.ids.push_back(3);
    e.label = static_cast<int64_t>(i % 2);
    e.row = static_cast<int64_t>(i);
    ex.push_back(e);
  }
  return TextDataset(std::move(ex), "sample");
}

TEST(ModelProfileTest, FiguresOfATinyModel) {
  FakeClassifier model;
  const auto dir = test::temp_dir("model_profile");
  model.save(dir.string());
  std::filesystem::create_directories(dir / "sub");
  std::ofstream(dir / "notes.txt") << std::string(100, 'x');
  std::ofstream(dir / "sub" / "more.bin") << std::string(23, 'y');
  const int64_t expected_bytes =
      static_cast<int64_t>(std::filesystem::file_size(dir / "model.safetensors")) + 100 + 23;

  const TextDataset data = sample({3, 5, 8, 4, 12, 6, 3});  // mean 41 / 7 tokens
  model.module().train();
  SpeedOptions so;
  so.warmup = 1;
  so.warmup_seconds = 0;  // the count alone
  so.repeats = 7;
  so.large_batch = 8;  // wraps around the 7 examples
  const ModelProfile p = profile_model(model, dir.string(), data, so);

  EXPECT_EQ(p.parameters, 50);
  EXPECT_EQ(p.disk_bytes, expected_bytes);
  EXPECT_DOUBLE_EQ(p.mean_tokens, 41.0 / 7.0);
  EXPECT_DOUBLE_EQ(p.flops_per_example, 41.0 / 7.0 * 4 + 18);
  EXPECT_GT(p.latency_ms_b1, 0);
  EXPECT_GE(p.latency_ms_b1_p90, p.latency_ms_b1);
  EXPECT_GT(p.throughput_b64, 0);
  EXPECT_EQ(p.threads, torch::get_num_threads());
  EXPECT_EQ(p.large_batch, 8);
  EXPECT_EQ(p.repeats, 7);
  EXPECT_EQ(p.device, "cpu");
  EXPECT_TRUE(model.module().is_training());  // mode restored

  model.module().eval();
  profile_model(model, "", data, so);
  EXPECT_FALSE(model.module().is_training());
  EXPECT_FALSE(c10::InferenceMode::is_enabled());  // the inference guard did not leak
}

TEST(ModelProfileTest, RejectsEmptySampleMissingFolderAndBadOptions) {
  FakeClassifier model;
  EXPECT_THROW(profile_model(model, "", TextDataset(std::vector<TextExample>{}, "empty")), DataError);
  const TextDataset data = sample({3, 4});
  EXPECT_THROW(profile_model(model, "/nonexistent/kd/model", data), IoError);
  SpeedOptions bad;
  bad.repeats = 0;
  EXPECT_THROW(profile_model(model, "", data, bad), ConfigError);
  SpeedOptions negative;
  negative.warmup_seconds = -1;
  EXPECT_THROW(profile_model(model, "", data, negative), ConfigError);
  // An infinite warm-up would never end and a NaN one never start the clock: both refused, not run.
  for (double seconds : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    SpeedOptions endless;
    endless.warmup_seconds = seconds;
    EXPECT_THROW(endless.check("report.latency_warmup_seconds"), ConfigError);
    EXPECT_THROW(profile_model(model, "", data, endless), ConfigError);
  }
}

TEST(ModelProfileTest, SeveralModelsAreMeasuredInTurnsPassByPass) {
  std::string log;
  LoggingClassifier a('a', &log), b('b', &log);
  const TextDataset data = sample({3, 5, 8});
  SpeedOptions so;
  so.warmup = 2;
  so.warmup_seconds = 0;
  so.repeats = 3;
  so.large_batch = 2;
  const auto profiles = profile_models({{&a, ""}, {&b, ""}}, data, so);
  ASSERT_EQ(profiles.size(), 2u);
  // Batch 1 (2 warm-up + 3 timed rounds), then the large batches likewise: always a, b, a, b, ...
  EXPECT_EQ(log, "abababababababababab");  // 10 rounds of a then b
  for (const auto& p : profiles) {
    EXPECT_EQ(p.parameters, 50);
    EXPECT_GT(p.latency_ms_b1, 0);
    EXPECT_GT(p.throughput_b64, 0);
  }
  EXPECT_TRUE(profile_models({}, data, so).empty());
}

// Records the widest batch it was given, to see which sample its passes came from.
class WidthClassifier : public FakeClassifier {
 public:
  ModelOutput forward(const Batch& batch, const FeatureRequest& features) override {
    widest = std::max(widest, batch.input_ids.size(1));
    return FakeClassifier::forward(batch, features);
  }
  int64_t widest = 0;
};

// A model that reads text differently (another tokenizer or max_length) is timed on the same rows in
// its own tokenization, in the same rounds as the others.
TEST(ModelProfileTest, ATargetWithItsOwnSampleIsTimedOnItsOwnTokens) {
  WidthClassifier a, b;
  const TextDataset shared = sample({3, 5, 8}), own = sample({3, 4, 4});
  SpeedOptions so;
  so.warmup = 1;
  so.warmup_seconds = 0;
  so.repeats = 3;
  so.large_batch = 2;
  const auto profiles = profile_models({{&a, ""}, {&b, "", &own}}, shared, so);
  EXPECT_NEAR(profiles[0].mean_tokens, 16.0 / 3, 1e-12);
  EXPECT_NEAR(profiles[1].mean_tokens, 11.0 / 3, 1e-12);
  EXPECT_EQ(a.widest, 8);
  EXPECT_EQ(b.widest, 4);
  EXPECT_EQ(profiles[1].b1_ms.size(), profiles[0].b1_ms.size());
  const TextDataset fewer = sample({3, 4});
  EXPECT_THROW(profile_models({{&a, ""}, {&b, "", &fewer}}, shared, so), DataError);
}

// Warm-up by time: a 1-ms student needs more than a count of passes (see SpeedOptions).
TEST(ModelProfileTest, WarmUpLastsAtLeastTheSecondsAskedForEachKind) {
  FakeClassifier model;
  const TextDataset data = sample({3, 4});
  SpeedOptions so;
  so.warmup = 0;
  so.warmup_seconds = 0.2;
  so.repeats = 1;
  so.large_batch = 2;
  const auto start = std::chrono::steady_clock::now();
  const ModelProfile p = profile_model(model, "", data, so);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(took, 0.4);  // batch 1, then the large batch
  EXPECT_DOUBLE_EQ(p.warmup_seconds, 0.2);
  EXPECT_DOUBLE_EQ(ModelProfile::from_json(p.to_json()).warmup_seconds, 0.2);
}

TEST(ModelProfileTest, JsonWritesNullForNonFiniteAndReadsBack) {
  ModelProfile p;
  p.parameters = 50;
  p.disk_bytes = 1234;
  p.mean_tokens = 5.5;
  p.latency_ms_b1 = 1.25;
  p.latency_ms_b1_p90 = 2.5;
  p.throughput_b64 = NAN;
  p.flops_per_example = INFINITY;
  p.threads = 2;
  const nlohmann::json j = p.to_json();
  EXPECT_TRUE(j.at("throughput_b64").is_null());
  EXPECT_TRUE(j.at("flops_per_example").is_null());
  EXPECT_EQ(j.dump().find("NaN"), std::string::npos);
  const ModelProfile q = ModelProfile::from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(q.parameters, 50);
  EXPECT_EQ(q.disk_bytes, 1234);
  EXPECT_DOUBLE_EQ(q.latency_ms_b1, 1.25);
  EXPECT_TRUE(std::isnan(q.throughput_b64));
  EXPECT_EQ(q.threads, 2);
}

}  // namespace
}  // namespace kd
