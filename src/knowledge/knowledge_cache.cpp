#include "kd/knowledge/knowledge_cache.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <unordered_set>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/io/safetensors.h"
#include "kd/util/fnv1a.h"
#include "kd/util/progress_bar.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

constexpr const char* kFormat = "kd-knowledge";
constexpr const char* kRebuild = "rebuild it with kd cache";

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Tensor bytes in file order, then every metadata entry but the checksum itself: the key fields live
// in the header, and a damaged key must not pass for a different, valid one.
std::string checksum(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  Fnv1a64 h;
  for (const auto& [name, t] : tensors) {
    const torch::Tensor c = t.to(torch::kCPU).contiguous();
    h.update(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  for (const auto& [k, v] : metadata) {
    if (k == "checksum") continue;
    h.update_field(k);
    h.update_field(v);
  }
  return h.hex();
}

FormatError corrupt(const std::string& path, const std::string& what) {
  return FormatError(located(path, "corrupt or truncated knowledge cache: " + what, kRebuild));
}

FormatError malformed(const std::string& path, const std::string& what) {
  return FormatError(located(path, "malformed knowledge cache: " + what, kRebuild));
}

std::string shape_str(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

// Data section start from the 8-byte header length; the reader already checked it fits the file.
uint64_t data_start(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[8] = {};
  in.read(reinterpret_cast<char*>(b), 8);
  if (!in) throw corrupt(path, "cannot read the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  return 8 + n;
}

}  // namespace

CacheWriteResult write_knowledge_cache(const std::string& path, TextClassifier& teacher, const TextDataset& data,
                                       const CacheKey& key, int64_t batch_size, bool progress) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t C = teacher.labels().size();
  const int64_t N = static_cast<int64_t>(data.size());
  if (batch_size < 1) throw ConfigError(located("batch_size", "must be >= 1, got " + std::to_string(batch_size)));
  if (N == 0) throw DataError(located(data.source(), "no rows to cache"));
  if (key.dtype != "F32" && key.dtype != "F16")
    throw ConfigError(located("dtype", "must be F32 or F16, got '" + key.dtype + "'"));
  if (key.top_k < 0 || key.top_k > C)
    throw ConfigError(located("top_k", "must be between 0 (all) and the teacher's " + std::to_string(C) +
                                           " classes, got " + std::to_string(key.top_k)));
  if (key.labels != teacher.labels().labels())
    throw ConfigError(located(path, "the cache key's label list is not the teacher's",
                              "build the key with make_cache_key from this teacher"));
  std::unordered_set<int64_t> seen;
  for (const TextExample& ex : data.examples())
    if (!seen.insert(ex.row).second)
      throw DataError(located(data.source(), "row " + std::to_string(ex.row) + " appears twice",
                              "cache the rows of one data file, each once"));

  // Length-sorted batches waste little compute on padding; results go back to dataset order.
  std::vector<int64_t> order(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return data[static_cast<size_t>(a)].encoding.size() < data[static_cast<size_t>(b)].encoding.size();
  });
  BucketBatcherOptions bo;
  bo.batch_size = batch_size;
  bo.shuffle = false;
  BucketBatcher batcher(data, bo, teacher.tokenizer().pad_id());
  LiveTeacher live(teacher);
  torch::Tensor all = torch::empty({N, C}, torch::kFloat32);  // (N, C) in dataset order
  ProgressBar bar("cache", (N + batch_size - 1) / batch_size, "batch", progress);
  for (int64_t b = 0; b < N; b += batch_size) {
    std::vector<int64_t> idx(order.begin() + b, order.begin() + std::min(N, b + batch_size));
    torch::Tensor logits = live.logits(batcher.collate(idx)).to(torch::kCPU);  // (B, C)
    if (logits.dim() != 2 || logits.size(1) != C)
      throw Error(located(path, "teacher returned logits of shape " + shape_str(logits) + ", expected (B, " +
                                    std::to_string(C) + ")"));
    all.index_copy_(0, torch::tensor(idx, torch::kLong), logits);
    bar.update();
  }
  bar.finish();

  const torch::Tensor finite = torch::isfinite(all).all(1);  // (N)
  if (!finite.all().item<bool>()) {
    const int64_t i = (~finite).nonzero()[0][0].item<int64_t>();
    throw DataError(located(data.source() + ": row " + std::to_string(data[static_cast<size_t>(i)].row),
                            "the teacher's logits are not finite", "check the teacher folder"));
  }

  CacheWriteResult result;
  result.rows = N;
  result.num_classes = C;
  std::vector<int64_t> labels(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) labels[static_cast<size_t>(i)] = data[static_cast<size_t>(i)].label;
  const torch::Tensor y = torch::tensor(labels, torch::kLong);  // (N)
  const torch::Tensor labelled = y >= 0;
  result.labelled = labelled.sum().item<int64_t>();
  result.correct = (all.argmax(1).eq(y) & labelled).sum().item<int64_t>();

  std::vector<int64_t> rows(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) rows[static_cast<size_t>(i)] = data[static_cast<size_t>(i)].row;
  const auto dtype = key.dtype == "F16" ? torch::kFloat16 : torch::kFloat32;
  NamedTensors tensors{{"rows", torch::tensor(rows, torch::kLong)}};
  torch::Tensor values;
  if (key.top_k == 0) {
    values = all.to(dtype);  // (N, C)
    tensors.emplace_back("logits", values);
  } else {
    auto [v, i] = all.topk(key.top_k, /*dim=*/1, /*largest=*/true, /*sorted=*/true);  // (N, k)
    values = v.to(dtype);
    tensors.emplace_back("topk_values", values);
    tensors.emplace_back("topk_indices", i.to(torch::kInt32));
  }
  if (!torch::isfinite(values).all().item<bool>())
    throw ConfigError(located(path, "the teacher's logits exceed the fp16 range (65504)", "cache without --fp16"));

  std::map<std::string, std::string> metadata = key.to_metadata();
  metadata["format"] = kFormat;
  metadata["version"] = std::to_string(kKnowledgeCacheVersion);
  metadata["num_classes"] = std::to_string(C);
  metadata["num_rows"] = std::to_string(N);
  metadata["checksum"] = checksum(tensors, metadata);
  save_safetensors(path, tensors, metadata);  // temp file, fsync, rename: never a partial cache
  result.bytes = fs::file_size(path);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::unique_ptr<CachedKnowledge> CachedKnowledge::open(const std::string& path, const CacheKey& expected) {
  auto cache = open_unchecked(path);
  if (auto m = first_mismatch(cache->key_, expected)) {
    const std::string what = located(path + ": " + m->field,
                                     "mismatch in " + m->what + ": the cache has '" + m->cached + "', expected '" +
                                         m->expected + "'",
                                     "rebuild it with kd cache for this teacher, data file and settings");
    if (m->data) throw DataError(what);
    throw ConfigError(what);
  }
  return cache;
}

std::unique_ptr<CachedKnowledge> CachedKnowledge::open_unchecked(const std::string& path) {
  if (!fs::exists(path)) throw IoError(located(path, "no such file", "build the cache with kd cache"));
  std::unique_ptr<SafeTensorsFile> file;
  try {
    file = std::make_unique<SafeTensorsFile>(path);
  } catch (const IoError& e) {
    if (!fs::is_regular_file(path)) throw;
    throw corrupt(path, e.what());
  } catch (const FormatError& e) {
    throw corrupt(path, e.what());
  }
  const auto& meta = file->metadata();
  auto format = meta.find("format");
  if (format == meta.end() || format->second != kFormat)
    throw FormatError(located(path, "not a kd knowledge cache (its metadata has no format '" + std::string(kFormat) + "')",
                              "build one with kd cache"));
  auto version = meta.find("version");
  int64_t v = -1;
  try {
    if (version != meta.end()) v = std::stoll(version->second);
  } catch (const std::exception&) {
  }
  if (v < 1) throw malformed(path, "no valid format version");
  if (v > kKnowledgeCacheVersion)
    throw FormatError(located(path, "knowledge cache format version " + std::to_string(v) +
                                        " is newer than this kd reads (" + std::to_string(kKnowledgeCacheVersion) + ")",
                              "update kd, or rebuild the cache with this kd's kd cache"));
  if (!meta.count("checksum")) throw corrupt(path, "no checksum in the metadata");

  // The tensors must fill the data section exactly: extra bytes mean the file was damaged or appended to.
  uint64_t end = 0;
  for (const auto& name : file->names()) end = std::max(end, file->info(name).end);
  const uint64_t size = fs::file_size(path), expected_size = data_start(path) + end;
  if (size != expected_size)
    throw corrupt(path, "file has " + std::to_string(size) + " bytes, its tensors need " + std::to_string(expected_size));
  NamedTensors tensors;
  std::map<std::string, torch::Tensor> by_name;
  try {
    for (const auto& name : file->names()) {
      const auto type = file->info(name).dtype == "F16" ? torch::kFloat16 : torch::kFloat32;  // as stored
      tensors.emplace_back(name, file->load(name, type));
      by_name[name] = tensors.back().second;
    }
  } catch (const Error& e) {
    throw corrupt(path, e.what());
  }
  const std::string sum = checksum(tensors, meta);
  if (sum != meta.at("checksum"))
    throw corrupt(path, "checksum mismatch (recorded " + meta.at("checksum") + ", contents hash to " + sum + ")");

  std::unique_ptr<CachedKnowledge> cache(new CachedKnowledge());
  cache->path_ = path;
  cache->metadata_ = meta;
  cache->key_ = CacheKey::from_metadata(meta, path);
  const CacheKey& key = cache->key_;
  int64_t C = 0;
  try {
    C = std::stoll(meta.count("num_classes") ? meta.at("num_classes") : "");
  } catch (const std::exception&) {
    throw malformed(path, "no valid num_classes");
  }
  if (C < 1 || static_cast<int64_t>(key.labels.size()) != C)
    throw malformed(path, "num_classes " + std::to_string(C) + " does not match the label list");
  auto tensor = [&](const char* name, torch::ScalarType type, const std::string& dtype) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw malformed(path, std::string("no tensor '") + name + "'");
    if (it->second.scalar_type() != type)
      throw malformed(path, std::string("tensor '") + name + "' is not " + dtype);
    return it->second;
  };
  const auto value_type = key.dtype == "F16" ? torch::kFloat16 : torch::kFloat32;
  const torch::Tensor rows = tensor("rows", torch::kLong, "I64");  // (N)
  if (rows.dim() != 1) throw malformed(path, "'rows' is not one-dimensional");
  const int64_t N = rows.size(0);
  if (key.top_k == 0) {
    const torch::Tensor logits = tensor("logits", value_type, key.dtype);  // (N, C)
    if (logits.dim() != 2 || logits.size(0) != N || logits.size(1) != C)
      throw malformed(path, "'logits' has shape " + shape_str(logits) + ", expected (" + std::to_string(N) + ", " +
                                std::to_string(C) + ")");
    cache->logits_ = logits.to(torch::kFloat32);
  } else {
    const torch::Tensor values = tensor("topk_values", value_type, key.dtype);  // (N, k)
    const torch::Tensor indices = tensor("topk_indices", torch::kInt, "I32");  // (N, k)
    const int64_t k = key.top_k;
    if (k > C || values.dim() != 2 || values.size(0) != N || values.size(1) != k || !indices.sizes().equals(values.sizes()))
      throw malformed(path, "top-k tensors have shapes " + shape_str(values) + " and " + shape_str(indices) +
                                ", expected (" + std::to_string(N) + ", " + std::to_string(k) + ")");
    const torch::Tensor idx = indices.to(torch::kLong);
    if (N > 0 && (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= C))
      throw malformed(path, "a top-k class index is outside [0, " + std::to_string(C) + ")");
    // Classes outside the top k get -inf: probability 0 under softmax, so soft losses ignore them.
    cache->logits_ = torch::full({N, C}, -std::numeric_limits<float>::infinity(), torch::kFloat32);  // (N, C)
    cache->logits_.scatter_(1, idx, values.to(torch::kFloat32));
  }
  const int64_t* r = rows.data_ptr<int64_t>();
  cache->index_.reserve(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i)
    if (!cache->index_.emplace(r[i], i).second) throw malformed(path, "row " + std::to_string(r[i]) + " appears twice");
  return cache;
}

torch::Tensor CachedKnowledge::logits(const Batch& batch) {
  if (static_cast<int64_t>(batch.row_ids.size()) != batch.size())
    throw DataError(located(path_, "the batch has " + std::to_string(batch.size()) + " examples but " +
                                       std::to_string(batch.row_ids.size()) + " row ids",
                            "cached knowledge is looked up by Batch::row_ids"));
  std::vector<int64_t> idx(batch.row_ids.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    auto it = index_.find(batch.row_ids[i]);
    if (it == index_.end())
      throw DataError(located(path_, "row " + std::to_string(batch.row_ids[i]) + " of the data is not in the cache (" +
                                         std::to_string(size()) + " rows)",
                              "the cache must be built from the same data file; " + std::string(kRebuild)));
    idx[i] = it->second;
  }
  torch::Tensor out = logits_.index_select(0, torch::tensor(idx, torch::kLong));  // (B, C)
  if (batch.input_ids.defined() && !batch.input_ids.device().is_cpu()) out = out.to(batch.input_ids.device());
  return out;
}

}  // namespace kd
