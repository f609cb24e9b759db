// The teacher's features cached for the feature terms (distill.features with distill.cache): the exact
// features the configured terms read (FeatureObjectiveImpl::teacher_features(), e.g. hidden.0,
// hidden.2, attn_scores.6) and the logits, so that the teacher runs once over the training file instead
// of on every batch of every epoch and every seed.
//
// One safetensors file (written atomically), each row stored without padding:
//   rows      (N) I64         TextExample::row of each cached example (its row in the data file)
//   lengths   (N) I64         its token count L_i ([CLS] .. [SEP]: the positions its attention mask keeps)
//   logits    (N, C) F32      always float32: N·C values cost little
//   <name>    (Σ_i n_i) F16|F32, one per cached feature, e.g. "hidden.2": row i's feature at its L_i real
//             positions, rows one after another in file order, each row's block in C order; n_i is the
//             row's element count from the feature's row shape, feature_shapes[name], in which T stands
//             for L_i: "T,384" for hidden states and q/k/v (L_i, H), "12,T,T" for attention (heads, L_i, L_i)
// and __metadata__: format "kd-features", version "1", every CacheKey field (dtype: the features'
// dtype; top_k 0), features (JSON list of the stored names, sorted), feature_shapes (JSON object, name
// to row shape), num_rows, num_classes, num_tokens (Σ L_i), and checksum as in cache_file.h. Rows are
// stored in the writer's length-sorted order; readers find a row through `rows`.
//
// A cache is used only when its key equals the caller's, the feature names included: a cache made for
// other layers, another teacher or other data is an error naming the field and both values.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kd/data/text_dataset.h"
#include "kd/knowledge/cache_key.h"
#include "kd/knowledge/knowledge_source.h"

namespace kd {

constexpr int64_t kFeatureCacheVersion = 1;

struct FeatureCacheKey {
  CacheKey base;                      // teacher, tokenizer, data, columns, max_length, labels; dtype of the features
  std::vector<std::string> features;  // the teacher features stored, sorted, each once

  // Key from the same inputs as make_cache_key; `features` is sorted and made unique.
  static FeatureCacheKey make(const std::string& teacher_dir, const TextClassifier& teacher,
                              const std::string& data_file, const TableOptions& table,
                              std::vector<std::string> features, bool fp16 = true);
};

struct FeatureCacheWriteOptions {
  int64_t batch_size = 128;
  bool progress = false;
  // The disk must keep this much free beyond the cache's size, or nothing is written (IoError).
  uint64_t free_margin = uint64_t{256} << 20;
};

struct FeatureCacheWriteResult {
  int64_t rows = 0, tokens = 0;  // rows and their real positions (Σ L_i)
  uint64_t planned_bytes = 0;    // the size said before writing (tensor payload and header)
  uint64_t bytes = 0;            // the written file's size
  double seconds = 0;            // teacher forward passes and writing
};

// Runs `teacher` (frozen) over `data` in length-sorted batches, keeps key.features of each row at its
// real positions, and writes the cache to `path` atomically. After the first batch, when the features'
// shapes are known, logs the cache's size and fails with an IoError (nothing written) when the disk
// has less free space than that size plus options.free_margin. A feature the teacher does not produce
// is a ConfigError naming it; key.base.dtype "F16" stores half precision (values beyond its range: ConfigError).
FeatureCacheWriteResult write_feature_cache(const std::string& path, TextClassifier& teacher, const TextDataset& data,
                                            const FeatureCacheKey& key, const FeatureCacheWriteOptions& options = {});

class CachedFeatures : public KnowledgeSource {
 public:
  // Reads and verifies a cache as CachedKnowledge::open does (corrupt or truncated: FormatError; a key
  // field that differs, the feature names included: ConfigError or DataError naming it and both values).
  static std::unique_ptr<CachedFeatures> open(const std::string& path, const FeatureCacheKey& expected);

  // (B, C) float32 on the batch's device, rows found by batch.row_ids (a row not cached: DataError).
  torch::Tensor logits(const Batch& batch) override;
  int64_t num_classes() const override { return logits_.size(1); }
  // The logits and every cached feature of the kinds `request` asks for (FeatureRequest: hidden.*, attn.*,
  // attn_scores.*, query/key/value.*); a kind asked for with none cached is a ConfigError naming it.
  ModelOutput teach(const Batch& batch, const FeatureRequest& request) override;
  // The logits and the features named; one that is not cached is a ConfigError naming it. Each feature is
  // float32 on the batch's device, padded to the batch's T (batch.attention_mask (B, T)) with zeros,
  // which the loss terms mask out: (B, T, H) for hidden states and q/k/v, (B, heads, T, T) for attention.
  ModelOutput teach_named(const Batch& batch, const std::vector<std::string>& names);

  int64_t size() const { return logits_.size(0); }
  const FeatureCacheKey& key() const { return key_; }
  const std::vector<std::string>& features() const { return key_.features; }
  const std::string& path() const { return path_; }

 private:
  CachedFeatures() = default;
  std::vector<int64_t> indices(const Batch& batch) const;  // cache index of each row of the batch

  struct Stored {
    torch::Tensor values;        // (Σ_i n_i) F16|F32, as in the file
    std::vector<int64_t> shape;  // row shape, -1 for T
    int64_t per_row = 1;         // n_i = per_row · L_i^t_dims
    int t_dims = 0;              // how many dimensions are T
  };

  std::string path_;
  FeatureCacheKey key_;
  torch::Tensor logits_;               // (N, C) float32
  std::vector<int64_t> lengths_;       // L_i, file order
  std::vector<int64_t> token_start_;   // Σ_{j<i} L_j, file order (N + 1)
  std::vector<int64_t> square_start_;  // Σ_{j<i} L_j², file order (N + 1)
  std::map<std::string, Stored> stored_;
  std::unordered_map<int64_t, int64_t> index_;  // data-file row -> file order
};

// The cache for the distillation pipeline: opened when `path` exists (its key must match), built first
// when it does not (logging what it stores and its size).
std::unique_ptr<CachedFeatures> cached_features(const std::string& path, TextClassifier& teacher,
                                                const TextDataset& rows, const FeatureCacheKey& key,
                                                const FeatureCacheWriteOptions& options = {});

}  // namespace kd
