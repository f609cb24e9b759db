#include "kd/data/bucket_batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <sstream>

#include "kd/error.h"
#include "test_paths.h"

namespace kd {
namespace {

constexpr int64_t kPad = 0;

// An example of `len` tokens: [CLS]=2, words 5.., [SEP]=3. Built directly, so these tests need no
// tokenizer.
TextExample example(size_t len, int64_t label, int64_t row) {
  TextExample ex;
  for (size_t t = 0; t < len; ++t) {
    ex.encoding.ids.push_back(t == 0 ? 2 : (t + 1 == len ? 3 : static_cast<int64_t>(5 + t)));
    ex.encoding.type_ids.push_back(0);
  }
  ex.label = label;
  ex.row = row;
  return ex;
}

TextDataset dataset_of_lengths(const std::vector<size_t>& lengths) {
  std::vector<TextExample> examples;
  for (size_t i = 0; i < lengths.size(); ++i)
    examples.push_back(example(lengths[i], static_cast<int64_t>(i % 2), static_cast<int64_t>(i)));
  return TextDataset(std::move(examples), "synthetic");
}

// SST-2 training lengths with whitespace words standing in for word pieces (+2 for [CLS] [SEP]).
const std::vector<size_t>& sst2_train_lengths() {
  static const std::vector<size_t> lengths = [] {
    std::vector<size_t> out;
    for (const auto& r : read_table(test::shared_data("sst2/train.tsv"), TableOptions{})) {
      std::istringstream words(r.texts[0]);
      size_t n = 0;
      for (std::string w; words >> w;) ++n;
      out.push_back(n + 2);
    }
    return out;
  }();
  return lengths;
}

std::vector<size_t> varied_lengths(size_t n) {
  std::vector<size_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(3 + (i * 7919) % 61);
  return out;
}

BucketBatcherOptions options(int64_t batch_size, bool shuffle = true, uint64_t seed = 13, int64_t bucket_batches = 5,
                             bool drop_last = false) {
  BucketBatcherOptions o;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.seed = seed;
  o.bucket_batches = bucket_batches;
  o.drop_last = drop_last;
  return o;
}

// Share of padded positions when every batch is padded to its longest example.
double padding_fraction(const TextDataset& ds, const std::vector<std::vector<int64_t>>& plan) {
  double padded = 0, total = 0;
  for (const auto& batch : plan) {
    size_t longest = 0, tokens = 0;
    for (int64_t i : batch) {
      longest = std::max(longest, ds[static_cast<size_t>(i)].encoding.size());
      tokens += ds[static_cast<size_t>(i)].encoding.size();
    }
    total += static_cast<double>(longest * batch.size());
    padded += static_cast<double>(longest * batch.size() - tokens);
  }
  return padded / total;
}

TEST(BucketBatcherTest, EveryExampleExactlyOncePerEpoch) {
  const auto ds = dataset_of_lengths(varied_lengths(1003));
  const BucketBatcher batcher(ds, options(32), kPad);
  EXPECT_EQ(batcher.num_batches(), 32);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto plan = batcher.epoch_plan(epoch);
    ASSERT_EQ(static_cast<int64_t>(plan.size()), batcher.num_batches());
    std::vector<int64_t> seen;
    size_t partial = 0;
    for (const auto& b : plan) {
      seen.insert(seen.end(), b.begin(), b.end());
      partial += b.size() != 32;
    }
    EXPECT_EQ(partial, 1u);
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(1003);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "epoch " << epoch;
  }
}

TEST(BucketBatcherTest, DeterministicPerSeedAndEpoch) {
  const auto ds = dataset_of_lengths(varied_lengths(500));
  const BucketBatcher a(ds, options(16), kPad), b(ds, options(16), kPad);
  const BucketBatcher other_seed(ds, options(16, true, 14), kPad);
  EXPECT_EQ(a.epoch_plan(0), b.epoch_plan(0));
  EXPECT_EQ(a.epoch_plan(3), b.epoch_plan(3));
  EXPECT_NE(a.epoch_plan(0), a.epoch_plan(1));
  EXPECT_NE(a.epoch_plan(0), other_seed.epoch_plan(0));
}

TEST(BucketBatcherTest, BucketingCutsPaddingOnSst2Lengths) {
  const auto ds = dataset_of_lengths(sst2_train_lengths());
  ASSERT_EQ(ds.size(), 67349u);
  // bucket_batches = 1 sorts only within a batch, which leaves random batch contents: the baseline.
  const double bucketed = padding_fraction(ds, BucketBatcher(ds, options(32, true, 13, 50), kPad).epoch_plan(0));
  const double random = padding_fraction(ds, BucketBatcher(ds, options(32, true, 13, 1), kPad).epoch_plan(0));
  RecordProperty("padding_bucketed", std::to_string(bucketed));
  RecordProperty("padding_random", std::to_string(random));
  EXPECT_LT(bucketed, 0.10) << "random batches pad " << random;  // about 0.05 at seed 13
  EXPECT_GT(random, 0.3);
  EXPECT_LT(bucketed, random / 5);
}

TEST(BucketBatcherTest, EvaluationKeepsRowOrder) {
  const auto ds = dataset_of_lengths(varied_lengths(70));
  const BucketBatcher batcher(ds, options(32, /*shuffle=*/false), kPad);
  for (int64_t epoch : {0, 5}) {
    const auto plan = batcher.epoch_plan(epoch);
    ASSERT_EQ(plan.size(), 3u);
    int64_t next = 0;
    for (const auto& b : plan)
      for (int64_t i : b) EXPECT_EQ(i, next++);
    EXPECT_EQ(plan[2].size(), 6u);
  }
}

TEST(BucketBatcherTest, DropLast) {
  const auto ds = dataset_of_lengths(varied_lengths(100));
  for (bool shuffle : {false, true}) {
    const BucketBatcher batcher(ds, options(32, shuffle, 13, 2, /*drop_last=*/true), kPad);
    EXPECT_EQ(batcher.num_batches(), 3);
    const auto plan = batcher.epoch_plan(1);
    ASSERT_EQ(plan.size(), 3u);
    std::vector<int64_t> seen;
    for (const auto& b : plan) {
      EXPECT_EQ(b.size(), 32u);
      seen.insert(seen.end(), b.begin(), b.end());
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
  }
  EXPECT_EQ(BucketBatcher(ds, options(32, true, 13, 2, false), kPad).num_batches(), 4);

  // Shuffled epochs leave out different examples, so over a few epochs every one is seen.
  const BucketBatcher shuffled(ds, options(32, true, 13, 2, true), kPad);
  std::set<int64_t> ever;
  for (int64_t epoch = 0; epoch < 10; ++epoch)
    for (const auto& b : shuffled.epoch_plan(epoch)) ever.insert(b.begin(), b.end());
  EXPECT_EQ(ever.size(), 100u);
}

TEST(BucketBatcherTest, CollatePadsToLongestInBatch) {
  std::vector<TextExample> examples = {example(3, 1, 10), example(5, 0, 11), example(4, -1, 12)};
  // A sentence pair: [CLS] a [SEP] b b [SEP] with the second segment typed 1.
  examples[1].encoding.type_ids = {0, 0, 0, 1, 1};
  const TextDataset ds(std::move(examples), "mem");
  const int64_t pad = 7;
  const BucketBatcher batcher(ds, options(8, false), pad);
  const Batch b = batcher.collate({2, 0, 1});

  EXPECT_EQ(b.size(), 3);
  EXPECT_EQ(b.input_ids.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(b.input_ids.scalar_type(), torch::kInt64);
  EXPECT_EQ(b.attention_mask.scalar_type(), torch::kInt64);
  EXPECT_EQ(b.token_type_ids.scalar_type(), torch::kInt64);
  EXPECT_EQ(b.labels.scalar_type(), torch::kInt64);
  const auto ids = b.input_ids.accessor<int64_t, 2>();
  const auto mask = b.attention_mask.accessor<int64_t, 2>();
  const auto types = b.token_type_ids.accessor<int64_t, 2>();
  const std::vector<size_t> lens = {4, 3, 5};
  const std::vector<int64_t> src = {2, 0, 1};
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t t = 0; t < 5; ++t) {
      const bool real = static_cast<size_t>(t) < lens[r];
      EXPECT_EQ(mask[r][t], real ? 1 : 0);
      EXPECT_EQ(ids[r][t], real ? ds[static_cast<size_t>(src[r])].encoding.ids[t] : pad);
      if (!real) {
        EXPECT_EQ(types[r][t], 0);
      }
    }
  EXPECT_EQ(types[2][3], 1);
  EXPECT_EQ(types[2][4], 1);
  EXPECT_EQ(b.labels.sizes(), (std::vector<int64_t>{3}));
  EXPECT_EQ(b.labels[0].item<int64_t>(), -1);
  EXPECT_EQ(b.labels[1].item<int64_t>(), 1);
  EXPECT_EQ(b.labels[2].item<int64_t>(), 0);
  EXPECT_EQ(b.row_ids, (std::vector<int64_t>{12, 10, 11}));
}

TEST(BucketBatcherTest, CollateRejectsBadIndices) {
  const auto ds = dataset_of_lengths({3, 4});
  const BucketBatcher batcher(ds, options(2), kPad);
  EXPECT_THROW(batcher.collate({}), DataError);
  EXPECT_THROW(batcher.collate({0, 2}), DataError);
}

TEST(BucketBatcherTest, InvalidOptions) {
  const auto ds = dataset_of_lengths({3, 4});
  EXPECT_THROW(BucketBatcher(ds, options(0), kPad), ConfigError);
  EXPECT_THROW(BucketBatcher(ds, options(4, true, 13, 0), kPad), ConfigError);
}

// The shuffle is a uniform permutation: over many seeds, every element lands in every position
// about equally often (Fisher-Yates done wrong, e.g. swapping with any index, fails this).
TEST(BucketBatcherTest, SeededShuffleIsUniform) {
  constexpr int n = 5, trials = 20000;
  std::vector<std::vector<int>> counts(n, std::vector<int>(n, 0));
  for (int t = 0; t < trials; ++t) {
    std::vector<int> v(n);
    std::iota(v.begin(), v.end(), 0);
    std::mt19937_64 rng(static_cast<uint64_t>(t));
    seeded_shuffle(v, rng);
    std::vector<int> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted, (std::vector<int>{0, 1, 2, 3, 4}));
    for (int pos = 0; pos < n; ++pos) ++counts[v[pos]][pos];
  }
  const double expected = static_cast<double>(trials) / n;  // 4000, sd about 57
  for (int e = 0; e < n; ++e)
    for (int pos = 0; pos < n; ++pos) EXPECT_NEAR(counts[e][pos], expected, 300) << e << " at " << pos;
}

}  // namespace
}  // namespace kd
