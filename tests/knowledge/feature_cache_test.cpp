// The teacher feature cache (distill.features with distill.cache) on a tiny random BERT teacher: what it
// returns against the live teacher (on the writer's own batches fp32 gives the same bits and fp16 the
// teacher rounded to half, within 2^-11 of each value; on training's batches the same within float32
// rounding besides), that it stores only the features asked for, every key mismatch (other layers,
// another teacher, other precision), corruption and truncation, a feature not cached, the free-space
// check before writing, and the terms' lists of the teacher features they read.
#include "kd/knowledge/feature_cache.h"

#include <gtest/gtest.h>

#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/config.h"
#include "kd/io/safetensors.h"
#include "kd/knowledge/cache_file.h"
#include "kd/losses/feature_terms.h"
#include "expect_error.h"
#include "models/tiny_bert.h"
#include "test_paths.h"
#include "knowledge/training_batches.h"
#include "tolerance.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::expect_error;

// 40 rows of 1..13 words over the tiny vocabulary ("w5".."w39"), so rows have different lengths.
void write_data(const fs::path& path) {
  std::ofstream out(path);
  out << "sentence\tlabel\n";
  for (int i = 0; i < 40; ++i) {
    std::string s;
    for (int w = 0; w <= (i * 5) % 13; ++w) s += (w ? " w" : "w") + std::to_string(5 + (i * 7 + w * 3) % 35);
    out << s << "\t" << (i % 2 ? "pos" : "neg") << "\n";
  }
}

const std::vector<std::string> kFeatures = {"attn_scores.2", "hidden.0", "hidden.2", "hidden.4", "query.3", "value.3"};
constexpr size_t kWriteBatch = 8;
// The kinds of kFeatures: hidden states, attention scores, q/k/v (not the attention probabilities).
const FeatureRequest kKinds{true, false, true, true};

class FeatureCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("feature_cache");
    data_ = (dir_ / "data.tsv").string();
    write_data(data_);
    teacher_ = test::tiny_bert(4, 16, 2, 1);
    teacher_dir_ = (dir_ / "teacher").string();
    fs::create_directories(teacher_dir_);
    teacher_->save(teacher_dir_);
    dataset_ = std::make_unique<TextDataset>(read_table(data_, table_), teacher_->tokenizer(), teacher_->labels(),
                                             teacher_->max_length(), data_);
  }

  FeatureCacheKey key(bool fp16, std::vector<std::string> features = kFeatures) {
    return FeatureCacheKey::make(teacher_dir_, *teacher_, data_, table_, std::move(features), fp16);
  }
  std::string write(const std::string& name, bool fp16, std::vector<std::string> features = kFeatures) {
    const std::string path = (dir_ / name).string();
    FeatureCacheWriteOptions o;
    o.batch_size = kWriteBatch;
    write_feature_cache(path, *teacher_, *dataset_, key(fp16, std::move(features)), o);
    return path;
  }
  // Shuffled, length-bucketed batches, as training draws them (other batches than the writer's).
  std::vector<Batch> batches() { return test::training_batches(*dataset_, teacher_->tokenizer().pad_id()); }
  // The writer's own batches (rows sorted by length, kWriteBatch at a time): the same computation as
  // the cached values, so a float32 cache must give them back bit for bit.
  std::vector<Batch> writer_batches() {
    const std::vector<int64_t> order = cache_write_order(*dataset_);
    BucketBatcherOptions o;
    o.shuffle = false;
    BucketBatcher b(*dataset_, o, teacher_->tokenizer().pad_id());
    std::vector<Batch> out;
    for (size_t i = 0; i < order.size(); i += kWriteBatch)
      out.push_back(b.collate({order.begin() + static_cast<std::ptrdiff_t>(i),
                               order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + kWriteBatch))}));
    return out;
  }

  fs::path dir_;
  std::string data_, teacher_dir_;
  TableOptions table_;
  std::unique_ptr<BertTextClassifier> teacher_;
  std::unique_ptr<TextDataset> dataset_;
};

// The real positions of a feature of a batch: (B, T, H) keeps tokens, (B, heads, T, T) token pairs.
torch::Tensor real_mask(const torch::Tensor& feature, const torch::Tensor& attention_mask) {
  const auto m = attention_mask.to(torch::kBool);  // (B, T)
  if (feature.dim() == 3) return m.unsqueeze(2).expand_as(feature);
  return (m.unsqueeze(1).unsqueeze(3) & m.unsqueeze(1).unsqueeze(2)).expand_as(feature);
}

// Checks every cached feature of `got` against the live teacher's at real positions with `compare`, and
// that padding positions are zero.
using Compare = std::function<void(const torch::Tensor& got, const torch::Tensor& want)>;
void expect_matches_live(const ModelOutput& got, const ModelOutput& live, const Batch& b, const Compare& compare) {
  ASSERT_EQ(got.features.size(), kFeatures.size());
  for (const auto& [name, g] : got.features) {
    SCOPED_TRACE(name);
    const torch::Tensor& want = live.feature(name);
    ASSERT_EQ(g.sizes(), want.sizes());
    EXPECT_EQ(g.scalar_type(), torch::kFloat32);
    EXPECT_FALSE(g.requires_grad());
    const auto real = real_mask(g, b.attention_mask);
    compare(g.masked_select(real), want.masked_select(real));
    EXPECT_EQ(g.masked_select(~real).abs().sum().item<float>(), 0.0f) << "padding positions are zero";
  }
}

// Other batches than the writer's change the live teacher's own float32 results in their last bits
// (other matrix shapes, other summation orders): there both sides may differ by tests/tolerance.h's
// float32 bound, n = the tiny teacher's intermediate width, depth = its layers.
bool within_fp32_rounding(const torch::Tensor& got, const torch::Tensor& want) {
  return test::tolerance_ratio(got, want, /*reduction_length=*/32, /*depth=*/4) <= 1.0;
}

// Round to nearest: at most half a unit in the last place, 2^-11 of the value (fp16 keeps 11 significant
// bits), or 2^-25 below fp16's normal range (its subnormal spacing is 2^-24); `slack` adds what the two
// float32 computations may differ by before rounding.
void expect_within_fp16_rounding(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& slack) {
  const auto bound = want.abs() * std::ldexp(1.0, -11) + std::ldexp(1.0, -25) + slack;
  EXPECT_TRUE(((got - want).abs() <= bound).all().item<bool>())
      << "largest excess " << ((got - want).abs() - bound).max().item<float>();
}

TEST_F(FeatureCacheTest, F32RoundTripIsTheLiveTeacher) {
  const std::string path = (dir_ / "f32.safetensors").string();
  const auto r = write_feature_cache(path, *teacher_, *dataset_, key(false), {kWriteBatch, false});
  EXPECT_EQ(r.rows, 40);
  EXPECT_EQ(r.bytes, fs::file_size(path));
  // The size said before writing is the file's, but for the header's exact length.
  EXPECT_GE(r.planned_bytes + 1024, r.bytes);
  EXPECT_LE(r.planned_bytes, r.bytes + 1024);
  auto cache = CachedFeatures::open(path, key(false));
  EXPECT_EQ(cache->size(), 40);
  EXPECT_EQ(cache->num_classes(), 2);
  EXPECT_EQ(cache->features(), kFeatures);
  LiveTeacher live(*teacher_);
  for (const Batch& b : writer_batches()) {
    const ModelOutput got = cache->teach(b, kKinds);
    const ModelOutput want = live.teach(b, kKinds);
    ASSERT_TRUE(torch::equal(got.logits, want.logits));
    expect_matches_live(got, want, b, [](const torch::Tensor& g, const torch::Tensor& w) {
      EXPECT_TRUE(torch::equal(g, w)) << "largest difference " << (g - w).abs().max().item<float>();
    });
  }
  for (const Batch& b : batches()) {
    const ModelOutput got = cache->teach(b, kKinds);
    const ModelOutput want = live.teach(b, kKinds);
    EXPECT_TRUE(within_fp32_rounding(got.logits, want.logits));
    expect_matches_live(
        got, want, b, [](const torch::Tensor& g, const torch::Tensor& w) { EXPECT_TRUE(within_fp32_rounding(g, w)); });
  }
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(FeatureCacheTest, F16IsTheLiveTeacherWithinHalfPrecision) {
  auto cache = CachedFeatures::open(write("f16.safetensors", true), key(true));
  EXPECT_EQ(cache->key().base.dtype, "F16");
  LiveTeacher live(*teacher_);
  for (const Batch& b : writer_batches()) {
    const ModelOutput got = cache->teach(b, kKinds);
    const ModelOutput want = live.teach(b, kKinds);
    ASSERT_TRUE(torch::equal(got.logits, want.logits)) << "logits are stored in float32";
    expect_matches_live(got, want, b, [](const torch::Tensor& g, const torch::Tensor& w) {
      EXPECT_TRUE(torch::equal(g, w.to(torch::kFloat16).to(torch::kFloat32))) << "the teacher rounded to half";
      expect_within_fp16_rounding(g, w, torch::zeros_like(w));
    });
  }
  for (const Batch& b : batches()) {
    const ModelOutput got = cache->teach(b, kKinds);
    const ModelOutput want = live.teach(b, kKinds);
    expect_matches_live(got, want, b, [](const torch::Tensor& g, const torch::Tensor& w) {
      const auto scale = w.abs() + w.square().mean().sqrt();
      expect_within_fp16_rounding(g, w, scale * test::relative_rounding_bound(test::kEps32, 32, 4));
    });
  }
}

// On a GPU the cached features come back on the batch's device, the same values. Without one: skipped.
TEST_F(FeatureCacheTest, FeaturesFollowTheBatchToCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  auto cache = CachedFeatures::open(write("cuda.safetensors", true), key(true));
  const Batch b = batches().front();
  const ModelOutput cpu = cache->teach(b, kKinds);
  const ModelOutput gpu = cache->teach(b.to(torch::Device(torch::kCUDA)), kKinds);
  EXPECT_TRUE(gpu.logits.is_cuda());
  EXPECT_TRUE(torch::equal(gpu.logits.cpu(), cpu.logits));
  ASSERT_EQ(gpu.features.size(), kFeatures.size());
  for (const auto& [name, t] : gpu.features) {
    EXPECT_TRUE(t.is_cuda()) << name;
    EXPECT_TRUE(torch::equal(t.cpu(), cpu.features.at(name))) << name;
  }
}

TEST_F(FeatureCacheTest, StoresOnlyTheNamedFeaturesAndRefusesOthers) {
  const std::string path = write("some.safetensors", true, {"hidden.4", "hidden.2"});
  SafeTensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"rows", "lengths", "logits", "hidden.2", "hidden.4"}));
  EXPECT_EQ(f.metadata().at("format"), "kd-features");
  EXPECT_EQ(f.metadata().at("version"), "1");
  EXPECT_EQ(f.metadata().at("features"), "[\"hidden.2\",\"hidden.4\"]");
  EXPECT_EQ(f.metadata().at("feature_shapes"), "{\"hidden.2\":\"T,16\",\"hidden.4\":\"T,16\"}");
  EXPECT_EQ(f.info("hidden.2").dtype, "F16");
  int64_t tokens = 0;
  for (const auto& ex : dataset_->examples()) tokens += static_cast<int64_t>(ex.encoding.size());
  EXPECT_EQ(f.info("hidden.2").shape, (std::vector<int64_t>{tokens * 16})) << "no padding stored";

  auto cache = CachedFeatures::open(path, key(true, {"hidden.2", "hidden.4"}));
  const Batch b = batches().front();
  const ModelOutput hidden = cache->teach(b, FeatureRequest{true, false, false, false});
  EXPECT_EQ(hidden.features.size(), 2u);
  EXPECT_EQ(hidden.features.at("hidden.2").sizes(), (std::vector<int64_t>{b.size(), b.input_ids.size(1), 16}));
  EXPECT_TRUE(cache->teach(b, {}).features.empty());
  expect_error<ConfigError>(
      [&] {
        cache->teach_named(b, {"hidden.2", "hidden.3"});
      },
      {"some.safetensors: hidden.3", "not in the feature cache", "hidden.2", "hidden.4"});
  expect_error<ConfigError>(
      [&] {
        cache->teach(b, FeatureRequest{true, false, true, false});
      },
      {"some.safetensors", "no attn_scores.* features"});
  Batch other = b;
  other.row_ids[0] = 9999;
  expect_error<DataError>([&] { cache->teach(other, {}); }, {"row 9999", "not in the cache"});

  expect_error<ConfigError>([&] { write("bad.safetensors", true, {"hidden.9"}); }, {"hidden.9", "does not produce"});
  expect_error<ConfigError>([&] { write("bad.safetensors", true, {"pooled"}); }, {"pooled", "not a teacher feature"});
  EXPECT_FALSE(fs::exists(dir_ / "bad.safetensors"));
}

TEST_F(FeatureCacheTest, KeyMismatchesNameTheFieldAndBothValues) {
  const std::string path = write("key.safetensors", true);
  // Other layers.
  expect_error<ConfigError>(
      [&] {
        CachedFeatures::open(path, key(true, {"hidden.0", "hidden.1"}));
      },
      {"key.safetensors: features", "the cache has '[\"attn_scores.2\",\"hidden.0\"",
       "expected '[\"hidden.0\",\"hidden.1\"]'"});
  // Another teacher: same shape, other weights.
  auto other = test::tiny_bert(4, 16, 2, 2);
  const std::string other_dir = (dir_ / "other").string();
  fs::create_directories(other_dir);
  other->save(other_dir);
  const auto other_key = FeatureCacheKey::make(other_dir, *other, data_, table_, kFeatures, true);
  expect_error<ConfigError>(
      [&] { CachedFeatures::open(path, other_key); },
      {"key.safetensors: teacher", "teacher weights", key(true).base.teacher, other_key.base.teacher, "delete it"});
  // Other precision.
  expect_error<ConfigError>([&] { CachedFeatures::open(path, key(false)); },
                            {"key.safetensors: dtype", "'F16'", "'F32'"});
  // The order names are given in does not matter.
  EXPECT_NO_THROW(CachedFeatures::open(
      path, key(true, {"value.3", "hidden.4", "query.3", "hidden.2", "hidden.0", "attn_scores.2", "hidden.0"})));
  // A logits cache is not a feature cache.
  expect_error<ConfigError>([&] { write_feature_cache(path, *teacher_, *dataset_, key(true, {}), {}); },
                            {"no features to cache"});
}

TEST_F(FeatureCacheTest, CorruptionAndTruncationAreFormatErrors) {
  const std::string path = write("good.safetensors", true, {"hidden.2", "attn_scores.2"});
  const std::string bytes = read_file(path);
  const auto broken = [&](const std::string& name, const std::string& b) {
    const std::string p = (dir_ / name).string();
    write_file_atomic(p, b);
    return p;
  };
  const auto k = key(true, {"hidden.2", "attn_scores.2"});
  for (size_t cut : {size_t{1}, size_t{7}, bytes.size() / 2, bytes.size() - 10}) {
    const std::string p = broken("cut.safetensors", bytes.substr(0, bytes.size() - cut));
    expect_error<FormatError>([&] { CachedFeatures::open(p, k); },
                              {"cut.safetensors", "corrupt or truncated feature cache"});
  }
  // A flipped byte in the middle of the features, and one in a metadata value.
  std::string flipped = bytes;
  flipped[bytes.size() - bytes.size() / 3] ^= 0x10;
  expect_error<FormatError>([&] { CachedFeatures::open(broken("flip.safetensors", flipped), k); },
                            {"flip.safetensors", "checksum mismatch"});
  std::string meta = bytes;
  const size_t at = meta.find("\"num_rows\":\"40\"");
  ASSERT_NE(at, std::string::npos);
  meta[at + 12] = '5';
  expect_error<FormatError>([&] { CachedFeatures::open(broken("meta.safetensors", meta), k); },
                            {"meta.safetensors", "checksum mismatch"});
  expect_error<FormatError>([&] { CachedFeatures::open(broken("longer.safetensors", bytes + "x"), k); },
                            {"longer.safetensors", "corrupt or truncated"});
  expect_error<IoError>([&] { CachedFeatures::open((dir_ / "absent.safetensors").string(), k); },
                        {"absent.safetensors", "no such file"});
  // A logits cache is refused by name.
  const std::string logits = (dir_ / "logits.safetensors").string();
  save_safetensors(logits, {{"rows", torch::zeros({1}, torch::kLong)}}, {{"format", "kd-knowledge"}});
  expect_error<FormatError>([&] { CachedFeatures::open(logits, k); }, {"logits.safetensors", "not a kd feature cache"});
}

TEST_F(FeatureCacheTest, TooLittleDiskSpaceFailsBeforeWriting) {
  const std::string path = (dir_ / "big.safetensors").string();
  FeatureCacheWriteOptions o;
  o.free_margin = uint64_t{1} << 62;  // more than any disk has
  expect_error<IoError>([&] { write_feature_cache(path, *teacher_, *dataset_, key(true), o); },
                        {"big.safetensors", "the feature cache needs", "GB free", "distill.cache: false"});
  EXPECT_FALSE(fs::exists(path));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find("big.safetensors"), std::string::npos) << e.path();
}

TEST_F(FeatureCacheTest, CachedFeaturesBuildsOnceThenReuses) {
  const std::string path = (dir_ / "knowledge" / "features.safetensors").string();
  auto first = cached_features(path, *teacher_, *dataset_, key(true), {8, false});
  const auto written = fs::last_write_time(path);
  auto second = cached_features(path, *teacher_, *dataset_, key(true), {8, false});
  EXPECT_EQ(fs::last_write_time(path), written);
  const Batch b = batches().back();
  EXPECT_TRUE(torch::equal(first->logits(b), second->logits(b)));
  expect_error<ConfigError>(
      [&] {
        cached_features(path, *teacher_, *dataset_, key(true, {"hidden.1"}), {8, false});
      },
      {"features.safetensors: features", "hidden.1"});
}

// The teacher features each term reads, and the objective's sorted union: what a feature cache holds.
TEST(FeatureCacheTermsTest, TermsListTheTeacherFeaturesTheyRead) {
  auto student = test::tiny_bert(2, 8, 2, 3);
  auto teacher = test::tiny_bert(4, 16, 2, 1);
  auto config = Config::from_string(
      "features:\n"
      "  - {type: hidden_mse, layers: uniform}\n"
      "  - {type: attention_mse, layers: [[1, 3]]}\n"
      "  - {type: attention_kl, teacher_layer: 1}\n"
      "  - {type: relation_kl, relations: [query, value], relation_heads: 2}\n",
      "features.yaml");
  FeatureObjective objective(config.root().child_list("features"),
                             FeatureTermContext{student->encoder_shape(), teacher->encoder_shape()});
  EXPECT_EQ(objective->teacher_features(), (std::vector<std::string>{"attn_scores.1", "attn_scores.3", "hidden.0",
                                                                     "hidden.2", "hidden.4", "query.4", "value.4"}));
}

}  // namespace
}  // namespace kd
