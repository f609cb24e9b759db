// The batches a cache is read with in training: shuffled and length-bucketed, so other batches than
// the cache writer's, for the knowledge and feature cache tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kd/data/bucket_batcher.h"

namespace kd::test {

inline std::vector<Batch> training_batches(const TextDataset& data, int64_t pad_id, int64_t batch_size = 7,
                                           uint64_t seed = 3) {
  BucketBatcherOptions o;
  o.batch_size = batch_size;
  o.seed = seed;
  BucketBatcher b(data, o, pad_id);
  std::vector<Batch> out;
  for (const auto& idx : b.epoch_plan(0)) out.push_back(b.collate(idx));
  return out;
}

}  // namespace kd::test
