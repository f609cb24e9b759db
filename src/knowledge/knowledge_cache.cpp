#include "kd/knowledge/knowledge_cache.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/knowledge/cache_file.h"
#include "kd/train/data_parallel.h"
#include "kd/util/progress_bar.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

const CacheFormat kFormat{"kd-knowledge", kKnowledgeCacheVersion, "knowledge cache", "kd cache",
                          "rebuild it with kd cache"};

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
  // Length-sorted batches; results go back to dataset order.
  const std::vector<int64_t> order = cache_write_order(data);
  BucketBatcherOptions bo;
  bo.batch_size = batch_size;
  bo.shuffle = false;
  BucketBatcher batcher(data, bo, teacher.tokenizer().pad_id());
  LiveTeacher live(teacher);
  // In a data-parallel job each rank runs every world_size-th batch, and the parts are merged once.
  DataParallel* const dp = data_parallel();
  torch::Tensor all = dp ? torch::zeros({N, C}, torch::kFloat32) : torch::empty({N, C}, torch::kFloat32);  // (N, C) in dataset order
  ProgressBar bar("cache", (N + batch_size - 1) / batch_size, "batch", progress && is_main_process());
  for (int64_t b = 0; b < N; b += batch_size) {
    if (dp && (b / batch_size) % dp->world_size() != dp->rank()) {
      bar.update();
      continue;
    }
    std::vector<int64_t> idx(order.begin() + b, order.begin() + std::min(N, b + batch_size));
    torch::Tensor logits = live.logits(batcher.collate(idx)).to(torch::kCPU);  // (B, C)
    if (logits.dim() != 2 || logits.size(1) != C)
      throw Error(located(path, "teacher returned logits of shape " + shape_string(logits) + ", expected (B, " +
                                    std::to_string(C) + ")"));
    all.index_copy_(0, torch::tensor(idx, torch::kLong), logits);
    bar.update();
  }
  bar.finish();
  if (dp) all = dp->sum(all);  // each row came from exactly one rank: the sum is the merge

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
  metadata["num_classes"] = std::to_string(C);
  metadata["num_rows"] = std::to_string(N);
  if (is_main_process()) {  // rank 0 writes; the others open the file once it is there
    write_cache_file(path, kFormat, tensors, std::move(metadata));
    result.bytes = fs::file_size(path);
  }
  if (dp) dp->barrier();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::unique_ptr<CachedKnowledge> CachedKnowledge::open(const std::string& path, const CacheKey& expected) {
  auto cache = open_unchecked(path);
  check_cache_key(path, kFormat, cache->key_, expected);
  return cache;
}

std::unique_ptr<CachedKnowledge> CachedKnowledge::open_unchecked(const std::string& path) {
  const CacheFileContents file = read_cache_file(path, kFormat);
  std::unique_ptr<CachedKnowledge> cache(new CachedKnowledge());
  cache->path_ = path;
  cache->metadata_ = file.metadata;
  cache->key_ = CacheKey::from_metadata(file.metadata, path);
  const CacheKey& key = cache->key_;
  const int64_t C = cache_count(file, path, kFormat, "num_classes");
  if (C < 1 || static_cast<int64_t>(key.labels.size()) != C)
    throw cache_malformed(path, kFormat, "num_classes " + std::to_string(C) + " does not match the label list");
  auto tensor = [&](const char* name, torch::ScalarType type) { return cache_tensor(file, path, kFormat, name, type); };
  const auto value_type = key.dtype == "F16" ? torch::kFloat16 : torch::kFloat32;
  const torch::Tensor rows = tensor("rows", torch::kLong);  // (N)
  if (rows.dim() != 1) throw cache_malformed(path, kFormat, "'rows' is not one-dimensional");
  const int64_t N = rows.size(0);
  if (key.top_k == 0) {
    const torch::Tensor logits = tensor("logits", value_type);  // (N, C)
    if (logits.dim() != 2 || logits.size(0) != N || logits.size(1) != C)
      throw cache_malformed(path, kFormat,
                            "'logits' has shape " + shape_string(logits) + ", expected (" + std::to_string(N) + ", " +
                                std::to_string(C) + ")");
    cache->logits_ = logits.to(torch::kFloat32);
  } else {
    const torch::Tensor values = tensor("topk_values", value_type);     // (N, k)
    const torch::Tensor indices = tensor("topk_indices", torch::kInt);  // (N, k)
    const int64_t k = key.top_k;
    if (k > C || values.dim() != 2 || values.size(0) != N || values.size(1) != k ||
        !indices.sizes().equals(values.sizes()))
      throw cache_malformed(path, kFormat,
                            "top-k tensors have shapes " + shape_string(values) + " and " + shape_string(indices) +
                                ", expected (" + std::to_string(N) + ", " + std::to_string(k) + ")");
    const torch::Tensor idx = indices.to(torch::kLong);
    if (N > 0 && (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= C))
      throw cache_malformed(path, kFormat, "a top-k class index is outside [0, " + std::to_string(C) + ")");
    // Classes outside the top k get -inf: probability 0 under softmax, so soft losses ignore them.
    cache->logits_ = torch::full({N, C}, -std::numeric_limits<float>::infinity(), torch::kFloat32);  // (N, C)
    cache->logits_.scatter_(1, idx, values.to(torch::kFloat32));
  }
  const int64_t* r = rows.data_ptr<int64_t>();
  cache->index_.reserve(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i)
    if (!cache->index_.emplace(r[i], i).second)
      throw cache_malformed(path, kFormat, "row " + std::to_string(r[i]) + " appears twice");
  return cache;
}

torch::Tensor CachedKnowledge::logits(const Batch& batch) {
  const std::vector<int64_t> idx = cached_rows(batch, index_, path_, kFormat);
  torch::Tensor out = logits_.index_select(0, torch::tensor(idx, torch::kLong));  // (B, C)
  if (batch.input_ids.defined() && !batch.input_ids.device().is_cpu()) out = out.to(batch.input_ids.device());
  return out;
}

}  // namespace kd
