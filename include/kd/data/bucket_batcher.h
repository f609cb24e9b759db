// Length-bucketed batching with dynamic padding: examples of similar length share a batch, so little
// compute is spent on padding. Deterministic for a given seed and epoch.
#pragma once

#include <cstdint>
#include <vector>

#include "kd/data/batch.h"
#include "kd/data/text_dataset.h"

namespace kd {

struct BucketBatcherOptions {
  int64_t batch_size = 32;
  bool shuffle = true;        // false: dataset order, no bucketing (evaluation keeps row order)
  uint64_t seed = 13;
  int64_t bucket_batches = 50; // examples are sorted by length within windows of this many batches
  bool drop_last = false;
};

class BucketBatcher {
 public:
  BucketBatcher(const TextDataset& dataset, BucketBatcherOptions options, int64_t pad_id);

  // The batches of one epoch as lists of example indices. With shuffle: shuffle all indices with
  // (seed, epoch), sort each window of bucket_batches*batch_size by length, cut into batches, then
  // shuffle the order of batches. drop_last with shuffle drops the remainder from the shuffled order
  // before bucketing, so a random sample is left out each epoch (not the longest examples).
  std::vector<std::vector<int64_t>> epoch_plan(int64_t epoch) const;
  int64_t num_batches() const;

  // Pads to the longest example of the batch: input_ids/token_type_ids/attention_mask (B, T), labels (B).
  Batch collate(const std::vector<int64_t>& indices) const;

 private:
  const TextDataset& dataset_;
  BucketBatcherOptions options_;
  int64_t pad_id_;
};

}  // namespace kd
