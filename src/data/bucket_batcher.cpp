#include "kd/data/bucket_batcher.h"

#include <algorithm>
#include <random>

#include "kd/error.h"

namespace kd {

namespace {

// SplitMix64 finaliser: spreads (seed, epoch) over the whole 64-bit state so that nearby seeds and
// consecutive epochs give unrelated generators.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

BucketBatcher::BucketBatcher(const TextDataset& dataset, BucketBatcherOptions options, int64_t pad_id)
    : dataset_(dataset), options_(options), pad_id_(pad_id) {
  if (options_.batch_size < 1)
    throw ConfigError(located("batch_size", "must be >= 1, got " + std::to_string(options_.batch_size)));
  if (options_.bucket_batches < 1)
    throw ConfigError(located("bucket_batches", "must be >= 1, got " + std::to_string(options_.bucket_batches)));
}

int64_t BucketBatcher::num_batches() const {
  const int64_t n = static_cast<int64_t>(dataset_.size());
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<std::vector<int64_t>> BucketBatcher::epoch_plan(int64_t epoch) const {
  int64_t n = static_cast<int64_t>(dataset_.size());
  const int64_t bs = options_.batch_size;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;

  std::mt19937_64 rng(mix(options_.seed ^ mix(static_cast<uint64_t>(epoch))));
  if (options_.shuffle) {
    seeded_shuffle(order, rng);
    // Drop the remainder here, from the shuffled order, so the examples left out are a random
    // sample; cutting the last batch after sorting would always drop the longest of a window.
    if (options_.drop_last) order.resize(order.size() - order.size() % static_cast<size_t>(bs));
    n = static_cast<int64_t>(order.size());
    // Sorting inside windows (not globally) keeps batches of similar length while leaving enough
    // randomness that each epoch sees different batch compositions. stable_sort makes the result
    // depend only on the shuffled order, never on the sort implementation.
    const int64_t window = bs * options_.bucket_batches;
    auto length = [&](int64_t i) { return dataset_[static_cast<size_t>(i)].encoding.size(); };
    for (int64_t start = 0; start < n; start += window) {
      auto first = order.begin() + start, last = order.begin() + std::min(n, start + window);
      std::stable_sort(first, last, [&](int64_t a, int64_t b) { return length(a) < length(b); });
    }
  }

  std::vector<std::vector<int64_t>> batches;
  batches.reserve(static_cast<size_t>(num_batches()));
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t end = std::min(n, start + bs);
    if (end - start < bs && options_.drop_last) break;
    batches.emplace_back(order.begin() + start, order.begin() + end);
  }
  // Without this, every epoch would go from short to long within each window, a length curriculum
  // the optimiser would notice.
  if (options_.shuffle) seeded_shuffle(batches, rng);
  return batches;
}

Batch BucketBatcher::collate(const std::vector<int64_t>& indices) const {
  if (indices.empty()) throw DataError(located(dataset_.source(), "cannot collate an empty batch"));
  const int64_t B = static_cast<int64_t>(indices.size());
  int64_t T = 0;
  for (int64_t i : indices) {
    if (i < 0 || i >= static_cast<int64_t>(dataset_.size()))
      throw DataError(located(dataset_.source(), "example index " + std::to_string(i) + " out of range (dataset has " +
                                                     std::to_string(dataset_.size()) + ")"));
    T = std::max<int64_t>(T, static_cast<int64_t>(dataset_[static_cast<size_t>(i)].encoding.size()));
  }

  const auto opts = torch::TensorOptions().dtype(torch::kInt64);
  Batch batch;
  batch.input_ids = torch::full({B, T}, pad_id_, opts);  // (B, T)
  batch.token_type_ids = torch::zeros({B, T}, opts);     // (B, T)
  batch.attention_mask = torch::zeros({B, T}, opts);     // (B, T)
  batch.labels = torch::empty({B}, opts);                // (B)
  batch.row_ids.reserve(indices.size());
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  int64_t* types = batch.token_type_ids.data_ptr<int64_t>();
  int64_t* mask = batch.attention_mask.data_ptr<int64_t>();
  int64_t* labels = batch.labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const TextExample& ex = dataset_[static_cast<size_t>(indices[static_cast<size_t>(b)])];
    const Encoding& enc = ex.encoding;
    // Encodings without type ids (single segment) read as all zeros.
    const bool has_types = enc.type_ids.size() == enc.ids.size();
    for (size_t t = 0; t < enc.ids.size(); ++t) {
      const int64_t k = b * T + static_cast<int64_t>(t);
      ids[k] = enc.ids[t];
      types[k] = has_types ? enc.type_ids[t] : 0;
      mask[k] = 1;
    }
    labels[b] = ex.label;
    // Source-file rows, so knowledge cached for the file lines up even after a train/valid split.
    batch.row_ids.push_back(ex.row);
  }
  return batch;
}

}  // namespace kd
