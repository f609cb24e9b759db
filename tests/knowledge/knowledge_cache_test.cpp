// The teacher knowledge cache with a fake teacher whose logits are exact elementwise arithmetic on
// each row's own ids (so they do not depend on batch composition and can be compared bit for bit):
// round trips, fp16 and top-k storage, every key-field mismatch, corruption and truncation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "kd/knowledge/knowledge_cache.h"
#include "expect_error.h"
#include "test_paths.h"
#include "knowledge/training_batches.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

struct FakeNet : torch::nn::Module {
  explicit FakeNet(int64_t classes) { w = register_parameter("w", torch::randn({classes})); }
  torch::Tensor w;  // (C)
};

// logits[b][c] = w[c] * ((31 * id1 + 17 * c) % 11 - 5) + 0.25 * length: no reductions over tokens
// and no transcendental functions, so every element is computed the same way in any batch.
class FakeTeacher : public TextClassifier {
 public:
  FakeTeacher(std::vector<std::string> labels, uint64_t seed)
      : tokenizer_(vocab(), WordPieceOptions{}), labels_(std::move(labels)) {
    torch::manual_seed(seed);
    net_ = std::make_shared<FakeNet>(labels_.size());
  }
  static std::vector<std::string> vocab() {
    std::vector<std::string> v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (char c = 'a'; c <= 'z'; ++c) v.push_back(std::string(1, c) + std::string(1, c));
    return v;
  }
  ModelOutput forward(const Batch& batch, const FeatureRequest&) override {
    const int64_t C = labels_.size();
    auto id1 = batch.input_ids.select(1, 1).unsqueeze(1);                  // (B, 1)
    auto c = torch::arange(C, torch::kLong).unsqueeze(0);                  // (1, C)
    auto code = ((id1 * 31 + c * 17) % 11 - 5).to(torch::kFloat32);       // (B, C)
    auto len = batch.attention_mask.sum(1, false, torch::kLong).to(torch::kFloat32).unsqueeze(1);  // (B, 1)
    ModelOutput out;
    out.logits = net_->w.unsqueeze(0) * code + len * 0.25;  // (B, C)
    return out;
  }
  torch::nn::Module& module() override { return *net_; }
  const WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return 12; }
  std::string type() const override { return "fake"; }
  void save(const std::string& dir) const override {
    save_safetensors((fs::path(dir) / "model.safetensors").string(), {{"w", net_->w.detach()}});
  }
  FakeNet& net() { return *net_; }

 private:
  std::shared_ptr<FakeNet> net_;
  WordPieceTokenizer tokenizer_;
  LabelVocab labels_;
};

using kd::test::expect_error;

// 60 rows of 1..9 words; word ids vary so that rows have different logits.
void write_data(const fs::path& path, int variant = 0) {
  std::ofstream out(path);
  out << "sentence\tlabel\n";
  for (int i = 0; i < 60; ++i) {
    std::string s;
    for (int w = 0; w <= (i * 7) % 9; ++w) {
      const char c = static_cast<char>('a' + (i * 5 + w * 3 + variant) % 26);
      s += (w ? " " : "") + std::string(2, c);
    }
    out << s << "\t" << (i % 3 == 0 ? "" : std::to_string(i % 4)) << "\n";  // every third row unlabelled
  }
}

class KnowledgeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("knowledge_cache");
    data_ = (dir_ / "data.tsv").string();
    write_data(data_);
    teacher_ = std::make_unique<FakeTeacher>(std::vector<std::string>{"0", "1", "2", "3"}, 1);
    teacher_dir_ = (dir_ / "teacher").string();
    fs::create_directories(teacher_dir_);
    teacher_->save(teacher_dir_);
    dataset_ = std::make_unique<TextDataset>(read_table(data_, table_), teacher_->tokenizer(), teacher_->labels(),
                                             teacher_->max_length(), data_);
  }

  CacheKey key(int64_t top_k = 0, bool fp16 = false) {
    return make_cache_key(teacher_dir_, *teacher_, data_, table_, top_k, fp16);
  }
  std::string write(const std::string& name, int64_t top_k = 0, bool fp16 = false) {
    const std::string path = (dir_ / name).string();
    write_knowledge_cache(path, *teacher_, *dataset_, key(top_k, fp16), /*batch_size=*/8);
    return path;
  }
  // Shuffled, length-bucketed batches, as training would draw them.
  std::vector<Batch> batches() { return test::training_batches(*dataset_, teacher_->tokenizer().pad_id()); }

  fs::path dir_;
  std::string data_, teacher_dir_;
  TableOptions table_;
  std::unique_ptr<FakeTeacher> teacher_;
  std::unique_ptr<TextDataset> dataset_;
};

TEST_F(KnowledgeCacheTest, LiveTeacherIsFrozenFloat32WithoutHistory) {
  teacher_->module().train();
  LiveTeacher live(*teacher_);
  const auto l = live.logits(batches().front());
  EXPECT_FALSE(teacher_->module().is_training());
  EXPECT_EQ(l.scalar_type(), torch::kFloat32);
  EXPECT_FALSE(l.requires_grad());
  EXPECT_EQ(l.size(1), 4);
  EXPECT_EQ(live.num_classes(), 4);
}

TEST_F(KnowledgeCacheTest, F32RoundTripIsBitExact) {
  const std::string path = (dir_ / "f32.kdc").string();
  const auto r = write_knowledge_cache(path, *teacher_, *dataset_, key(), 8);
  EXPECT_EQ(r.rows, 60);
  EXPECT_EQ(r.num_classes, 4);
  EXPECT_EQ(r.labelled, 40);
  EXPECT_EQ(r.bytes, fs::file_size(path));
  auto cache = CachedKnowledge::open(path, key());
  EXPECT_EQ(cache->size(), 60);
  EXPECT_EQ(cache->num_classes(), 4);
  EXPECT_EQ(cache->key().dtype, "F32");
  LiveTeacher live(*teacher_);
  for (const Batch& b : batches()) ASSERT_TRUE(torch::equal(cache->logits(b), live.logits(b)));
  // Nothing but the cache is left in the folder (no temporary files).
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(KnowledgeCacheTest, F16IsTheTeacherRoundedToHalf) {
  auto cache = CachedKnowledge::open(write("f16.kdc", 0, true), key(0, true));
  EXPECT_EQ(cache->key().dtype, "F16");
  LiveTeacher live(*teacher_);
  for (const Batch& b : batches()) {
    const auto expected = live.logits(b).to(torch::kFloat16).to(torch::kFloat32);
    ASSERT_TRUE(torch::equal(cache->logits(b), expected));
    ASSERT_TRUE(torch::allclose(cache->logits(b), live.logits(b), 1e-3, 1e-3));
  }
}

TEST_F(KnowledgeCacheTest, TopKKeepsTheLargestAndMinusInfElsewhere) {
  for (bool fp16 : {false, true}) {
    auto cache = CachedKnowledge::open(write(fp16 ? "top2h.kdc" : "top2.kdc", 2, fp16), key(2, fp16));
    LiveTeacher live(*teacher_);
    for (const Batch& b : batches()) {
      const auto got = cache->logits(b);  // (B, 4)
      auto want = live.logits(b);
      if (fp16) want = want.to(torch::kFloat16).to(torch::kFloat32);
      const auto finite = torch::isfinite(got);
      EXPECT_TRUE((finite.sum(1) == 2).all().item<bool>());
      EXPECT_TRUE((got.masked_select(~finite) == -std::numeric_limits<float>::infinity()).all().item<bool>());
      // The two kept values are the teacher's two largest, at the teacher's classes.
      const auto top = std::get<0>(want.topk(2, 1));  // (B, 2)
      ASSERT_TRUE(torch::equal(std::get<0>(got.topk(2, 1)), top));
      ASSERT_TRUE(torch::equal(got.masked_select(finite), want.masked_select(finite)));
      EXPECT_TRUE(torch::equal(got.argmax(1), want.argmax(1)));
    }
  }
}

TEST_F(KnowledgeCacheTest, EveryKeyMismatchIsAClearError) {
  const std::string path = write("key.kdc");
  // Another teacher: same architecture, other weights.
  FakeTeacher other({"0", "1", "2", "3"}, 2);
  const std::string other_dir = (dir_ / "other").string();
  fs::create_directories(other_dir);
  other.save(other_dir);
  const auto other_key = make_cache_key(other_dir, other, data_, table_, 0, false);
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, other_key); },
                            {"key.kdc: teacher", "teacher weights", key().teacher, other_key.teacher, "kd cache"});
  // Other data: one byte changed.
  const std::string data2 = (dir_ / "data2.tsv").string();
  write_data(data2, 1);
  expect_error<DataError>([&] { CachedKnowledge::open(path, make_cache_key(teacher_dir_, *teacher_, data2, table_, 0, false)); },
                          {"key.kdc: data", "data file", "kd cache"});
  auto k = key();
  k.max_length = 10;
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: max_length", "'12'", "'10'"});
  k = key(3);
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: top_k", "'0'", "'3'"});
  k = key(0, true);
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: dtype", "'F32'", "'F16'"});
  k = key();
  k.text_columns = {"question"};
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: text_columns", "question"});
  k = key();
  k.labels = {"a", "b", "c", "d"};
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: labels"});
  k = key();
  k.tokenizer = "0000000000000000";
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: tokenizer"});
  // Augmented copies of the same file are other rows: a cache of the file as read is not theirs.
  k = key();
  k.augment = "copies=4 mask=0.1 ngram=0.25 max_ngram=5 seed=7";
  expect_error<ConfigError>([&] { CachedKnowledge::open(path, k); }, {"key.kdc: augment", "augmentation", "copies=4"});
  // An expectation may leave top_k and dtype open; "auto" resolves to the same format as "tsv".
  k = key();
  k.top_k = -1;
  k.dtype = "";
  EXPECT_NO_THROW(CachedKnowledge::open(path, k));
  TableOptions explicit_tsv = table_;
  explicit_tsv.format = TableFormat::Tsv;
  EXPECT_NO_THROW(CachedKnowledge::open(path, make_cache_key(teacher_dir_, *teacher_, data_, explicit_tsv, 0, false)));
}

TEST_F(KnowledgeCacheTest, TruncationAndFlippedBytesAreDetected) {
  const std::string path = write("good.kdc", 2, true);
  const std::string bytes = read_file(path);
  const auto broken = [&](const std::string& name, std::string b) {
    const std::string p = (dir_ / name).string();
    write_file_atomic(p, b);
    return p;
  };
  for (size_t cut : {size_t{1}, size_t{5}, bytes.size() / 2, bytes.size() - 10}) {
    const std::string p = broken("cut.kdc", bytes.substr(0, bytes.size() - cut));
    expect_error<FormatError>([&] { CachedKnowledge::open(p, key(2, true)); }, {"cut.kdc", "corrupt or truncated", "kd cache"});
  }
  std::string flipped = bytes;
  flipped.back() ^= 0x01;
  const std::string p = broken("flip.kdc", flipped);
  expect_error<FormatError>([&] { CachedKnowledge::open(p, key(2, true)); }, {"flip.kdc", "checksum mismatch"});
  const std::string q = broken("longer.kdc", bytes + "x");
  expect_error<FormatError>([&] { CachedKnowledge::open(q, key(2, true)); }, {"longer.kdc", "corrupt or truncated"});
  // A flipped digit in a metadata value (the header) is caught by the checksum too.
  std::string meta = bytes;
  const size_t at = meta.find("\"num_rows\":\"60\"");
  ASSERT_NE(at, std::string::npos);
  meta[at + 12] = '7';
  const std::string m = broken("meta.kdc", meta);
  expect_error<FormatError>([&] { CachedKnowledge::open_unchecked(m); }, {"meta.kdc", "checksum mismatch"});
  expect_error<IoError>([&] { CachedKnowledge::open((dir_ / "absent.kdc").string(), key()); }, {"absent.kdc", "no such file"});
}

TEST_F(KnowledgeCacheTest, NewerVersionAndForeignFilesAreRefused) {
  const std::string path = write("v.kdc");
  SafeTensorsFile f(path);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& n : f.names()) tensors.emplace_back(n, f.load(n));
  auto meta = f.metadata();
  meta["version"] = "2";
  const std::string v2 = (dir_ / "v2.kdc").string();
  save_safetensors(v2, tensors, meta);
  expect_error<FormatError>([&] { CachedKnowledge::open(v2, key()); }, {"v2.kdc", "version 2 is newer", "(1)"});
  const std::string plain = (dir_ / "plain.safetensors").string();
  save_safetensors(plain, tensors, {{"format", "pt"}});
  expect_error<FormatError>([&] { CachedKnowledge::open(plain, key()); }, {"plain.safetensors", "not a kd knowledge cache"});
}

TEST_F(KnowledgeCacheTest, MissingRowAndBadWriterInputsAreErrors) {
  auto cache = CachedKnowledge::open(write("rows.kdc"), key());
  Batch b = batches().front();
  EXPECT_TRUE(cache->contains(b.row_ids[0]));
  b.row_ids[1] = 9999;
  expect_error<DataError>([&] { cache->logits(b); }, {"rows.kdc", "row 9999", "not in the cache"});
  b.row_ids.pop_back();
  expect_error<DataError>([&] { cache->logits(b); }, {"row ids"});

  const std::string out = (dir_ / "bad.kdc").string();
  auto k = key(5);
  expect_error<ConfigError>([&] { write_knowledge_cache(out, *teacher_, *dataset_, k, 8); }, {"top_k", "4 classes"});
  std::vector<TextExample> twice = {(*dataset_)[0], (*dataset_)[0]};
  TextDataset dup(twice, "dup.tsv");
  expect_error<DataError>([&] { write_knowledge_cache(out, *teacher_, dup, key(), 8); }, {"dup.tsv", "appears twice"});
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(KnowledgeCacheTest, KeyMetadataRoundTripAndFingerprints) {
  const auto k = key(2, true);
  const auto back = CacheKey::from_metadata(k.to_metadata(), "x");
  EXPECT_FALSE(first_mismatch(back, k).has_value());
  EXPECT_EQ(k.teacher.size(), 16u);
  EXPECT_EQ(k.table_format, "tsv");
  EXPECT_EQ(k.max_length, 12);
  WordPieceOptions cased;
  cased.lowercase = false;
  EXPECT_NE(fingerprint_tokenizer(WordPieceTokenizer(FakeTeacher::vocab(), cased)), k.tokenizer);
  auto meta = k.to_metadata();
  meta.erase("max_length");
  expect_error<FormatError>([&] { CacheKey::from_metadata(meta, "c.kdc"); }, {"c.kdc", "max_length"});
}

}  // namespace
}  // namespace kd
