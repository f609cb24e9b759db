// The container both teacher caches share (knowledge_cache.h: logits; feature_cache.h: hidden states,
// attention, q/k/v): one safetensors file, written atomically, whose __metadata__ holds a format name, a
// version, the cache key's fields and `checksum`: FNV-1a 64 over the tensor payload (file order) followed
// by every other metadata entry, so that a flipped byte anywhere that matters, or a truncated or
// extended file, is found when the cache is opened, before any of it is used.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kd/data/batch.h"
#include "kd/data/text_dataset.h"
#include "kd/error.h"
#include "kd/knowledge/cache_key.h"

namespace kd {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// What a cache file is, and what its error messages advise.
struct CacheFormat {
  std::string name;     // metadata "format", e.g. "kd-knowledge"
  int64_t version = 1;  // the newest version this kd reads (and the one it writes)
  std::string noun;     // "knowledge cache", in messages
  std::string build;    // what makes one, e.g. "kd cache": "build one with <build>"
  std::string rebuild;  // the fix for a damaged or mismatched one, e.g. "rebuild it with kd cache"
};

// FormatErrors naming the file: "corrupt or truncated <noun>: what" and "malformed <noun>: what".
FormatError cache_corrupt(const std::string& path, const CacheFormat& format, const std::string& what);
FormatError cache_malformed(const std::string& path, const CacheFormat& format, const std::string& what);

// Tensor bytes in order, then every metadata entry but "checksum" itself: the key fields live in the
// header, and a damaged key must not pass for a different, valid one.
std::string cache_checksum(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata);

// Adds format, version and checksum to `metadata` and writes the file atomically (temp file, fsync,
// rename: never a partial cache).
void write_cache_file(const std::string& path, const CacheFormat& format, const NamedTensors& tensors,
                      std::map<std::string, std::string> metadata);

struct CacheFileContents {
  std::map<std::string, std::string> metadata;
  std::map<std::string, torch::Tensor> tensors;  // as stored (F16 stays F16), one copy each
};

// Reads and verifies a cache file: a missing file is an IoError; another format, a newer version, a
// checksum mismatch, a file longer or shorter than its tensors: FormatError naming the file.
CacheFileContents read_cache_file(const std::string& path, const CacheFormat& format);

// The first key field where `cached` differs from `expected`: a different teacher or setting is a
// ConfigError, different data a DataError, each naming path: field, what it is, both values and the fix.
void check_cache_key(const std::string& path, const CacheFormat& format, const CacheKey& cached,
                     const CacheKey& expected);
[[noreturn]] void throw_key_mismatch(const std::string& path, const CacheFormat& format, const KeyMismatch& m);

// A named tensor of `contents`, checked for its dtype: malformed-cache FormatError when absent or not `type`.
const torch::Tensor& cache_tensor(const CacheFileContents& contents, const std::string& path, const CacheFormat& format,
                                  const std::string& name, torch::ScalarType type);

// An integer metadata entry >= 0: malformed-cache FormatError when absent or not one.
int64_t cache_count(const CacheFileContents& contents, const std::string& path, const CacheFormat& format,
                    const std::string& name);

// The cache index of each row of `batch` (Batch::row_ids) through `index` (data-file row -> cache index);
// a row not cached, or a batch without a row id per example, is a DataError naming the cache file.
std::vector<int64_t> cached_rows(const Batch& batch, const std::unordered_map<int64_t, int64_t>& index,
                                 const std::string& path, const CacheFormat& format);

// The order a cache writer runs the teacher over `data` in: indices sorted by token count (stable), so
// that length-sorted batches waste little compute on padding. A row that appears twice is a DataError.
std::vector<int64_t> cache_write_order(const TextDataset& data);

std::string shape_string(const torch::Tensor& t);  // "(2, 5)"

}  // namespace kd
