// Offline teacher knowledge: `kd cache` runs the frozen teacher once over a data file and stores its
// logits, so distillation reads them instead of re-running the teacher every epoch.
//
// The cache is one safetensors file (written atomically):
//   rows          (N) I64       TextExample::row of each cached example (its row in the data file)
//   logits        (N, C) F32|F16            all classes, or with top_k > 0:
//   topk_values   (N, k) F32|F16, topk_indices (N, k) I32   the k largest logits per row, descending
// and __metadata__: format "kd-knowledge", version "1", every CacheKey field, num_classes, num_rows,
// and checksum: FNV-1a 64 over the tensor payload (file order) followed by every other metadata entry,
// so a flipped byte anywhere that matters, or a truncated file, is detected.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "kd/data/text_dataset.h"
#include "kd/knowledge/cache_key.h"
#include "kd/knowledge/knowledge_source.h"

namespace kd {

constexpr int64_t kKnowledgeCacheVersion = 1;

struct CacheWriteResult {
  int64_t rows = 0, num_classes = 0;
  int64_t labelled = 0, correct = 0;  // teacher top-1 accuracy on the labelled rows
  uint64_t bytes = 0;                 // size of the written file
  double seconds = 0;                 // teacher forward passes and writing
};

// Runs `teacher` (frozen: eval mode, no gradients) over `data` in length-sorted batches and writes
// the cache to `path` atomically. `key` must describe this teacher and data (key.labels equal to the
// teacher's, key.max_length what `data` was tokenized with); key.top_k in [0, C], key.dtype F32|F16.
CacheWriteResult write_knowledge_cache(const std::string& path, TextClassifier& teacher, const TextDataset& data,
                                       const CacheKey& key, int64_t batch_size = 128, bool progress = false);

class CachedKnowledge : public KnowledgeSource {
 public:
  // Reads and verifies a cache: format, version (newer: FormatError), checksum and structure
  // (corrupt or truncated: FormatError), then each key field against `expected` (a different teacher
  // or setting: ConfigError; different data: DataError; each naming the field, both values and the
  // fix). A missing file is an IoError.
  static std::unique_ptr<CachedKnowledge> open(const std::string& path, const CacheKey& expected);
  // Integrity checks only, no key comparison: for inspecting a cache (key() says what built it).
  static std::unique_ptr<CachedKnowledge> open_unchecked(const std::string& path);

  // (B, C) float32 on the batch's device, rows gathered by batch.row_ids; classes outside a cached
  // top-k are -inf (probability 0 for the soft losses). A row not in the cache is a DataError.
  torch::Tensor logits(const Batch& batch) override;
  int64_t num_classes() const override { return logits_.size(1); }

  int64_t size() const { return logits_.size(0); }
  bool contains(int64_t row) const { return index_.count(row) > 0; }
  const CacheKey& key() const { return key_; }
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  CachedKnowledge() = default;

  std::string path_;
  CacheKey key_;
  std::map<std::string, std::string> metadata_;
  torch::Tensor logits_;                         // (N, C) float32, dense
  std::unordered_map<int64_t, int64_t> index_;   // data-file row -> index into logits_
};

}  // namespace kd
