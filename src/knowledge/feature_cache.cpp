#include "kd/knowledge/feature_cache.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/knowledge/cache_file.h"
#include "kd/util/log.h"
#include "kd/util/progress_bar.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

const CacheFormat kFormat{"kd-features", kFeatureCacheVersion, "feature cache", "kd distill (distill.cache: true)",
                          "delete it, and kd distill builds it again"};

// Tensor names of the file besides the features; feature names all hold a dot, so they never collide.
const std::set<std::string> kFixedTensors = {"rows", "lengths", "logits"};

// Which FeatureRequest flag makes a model return the feature `name` ("hidden.3" -> hidden); false
// when kd's models produce no such feature.
bool request_flag(const std::string& name, FeatureRequest& request) {
  const auto dot = name.rfind('.');
  const std::string kind = name.substr(0, dot);
  const bool numbered = dot != std::string::npos && dot + 1 < name.size() &&
                        std::all_of(name.begin() + static_cast<std::ptrdiff_t>(dot) + 1, name.end(),
                                    [](unsigned char c) { return std::isdigit(c); });
  if (!numbered) return false;
  if (kind == "hidden") return request.hidden = true;
  if (kind == "attn") return request.attention = true;
  if (kind == "attn_scores") return request.attention_scores = true;
  if (kind == "query" || kind == "key" || kind == "value") return request.qkv = true;
  return false;
}

bool requested(const std::string& name, const FeatureRequest& request) {
  FeatureRequest r;
  request_flag(name, r);
  return (r.hidden && request.hidden) || (r.attention && request.attention) ||
         (r.attention_scores && request.attention_scores) || (r.qkv && request.qkv);
}

// A row's shape written as in the metadata: "T,384", "12,T,T" (-1 is T).
std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + (shape[i] < 0 ? "T" : std::to_string(shape[i]));
  return s;
}

// The row shape of a teacher output (B, ...) padded to T: its token axes become -1.
std::vector<int64_t> row_shape(const std::string& path, const std::string& name, const torch::Tensor& t, int64_t T) {
  const bool tokens = t.dim() == 3 && t.size(1) == T;                   // (B, T, H)
  const bool pairs = t.dim() == 4 && t.size(2) == T && t.size(3) == T;  // (B, heads, T, T)
  if (!tokens && !pairs)
    throw Error(located(path, "the teacher's feature '" + name + "' has shape " + shape_string(t) + ", expected (B, " +
                                  std::to_string(T) + ", H) or (B, heads, " + std::to_string(T) + ", " +
                                  std::to_string(T) + ")"));
  return tokens ? std::vector<int64_t>{-1, t.size(2)} : std::vector<int64_t>{t.size(1), -1, -1};
}

// A row's block: the row shape at length L.
std::vector<int64_t> at_length(const std::vector<int64_t>& shape, int64_t L) {
  std::vector<int64_t> s = shape;
  for (auto& d : s)
    if (d < 0) d = L;
  return s;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// `t` (padded to T along its token axes) cut to its first L positions there.
torch::Tensor real_positions(torch::Tensor t, const std::vector<int64_t>& shape, int64_t L) {
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] < 0) t = t.narrow(static_cast<int64_t>(d), 0, L);
  return t;
}

std::string json_list(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

std::string gigabytes(uint64_t bytes) { return strf("%.2f GB", static_cast<double>(bytes) / 1e9); }

// An IoError, before anything is written, when the disk that will hold `path` has less than `bytes` plus
// `margin` free.
void check_free_space(const std::string& path, uint64_t bytes, uint64_t margin) {
  std::error_code ec;
  const fs::path parent = fs::absolute(path).parent_path();
  const fs::space_info space = fs::space(fs::exists(parent) ? parent : fs::current_path(), ec);
  if (!ec && space.available < bytes + margin)
    throw IoError(located(path,
                          "the feature cache needs " + gigabytes(bytes) + " and a margin of " + gigabytes(margin) +
                              ", but the disk has " + gigabytes(space.available) + " free",
                          "free space there, set distill.cache_path to another disk, or distill.cache: false "
                          "to run the teacher live"));
}

}  // namespace

FeatureCacheKey FeatureCacheKey::make(const std::string& teacher_dir, const TextClassifier& teacher,
                                      const std::string& data_file, const TableOptions& table,
                                      std::vector<std::string> features, bool fp16) {
  FeatureCacheKey k;
  k.base = make_cache_key(teacher_dir, teacher, data_file, table, /*top_k=*/0, fp16);
  std::sort(features.begin(), features.end());
  features.erase(std::unique(features.begin(), features.end()), features.end());
  k.features = std::move(features);
  return k;
}

FeatureCacheWriteResult write_feature_cache(const std::string& path, TextClassifier& teacher, const TextDataset& data,
                                            const FeatureCacheKey& key, const FeatureCacheWriteOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t C = teacher.labels().size();
  const int64_t N = static_cast<int64_t>(data.size());
  const CacheKey& base = key.base;
  if (options.batch_size < 1)
    throw ConfigError(located("batch_size", "must be >= 1, got " + std::to_string(options.batch_size)));
  if (N == 0) throw DataError(located(data.source(), "no rows to cache"));
  if (base.dtype != "F32" && base.dtype != "F16")
    throw ConfigError(located("dtype", "must be F32 or F16, got '" + base.dtype + "'"));
  if (base.top_k != 0) throw ConfigError(located("top_k", "a feature cache keeps every class: top_k must be 0"));
  if (base.labels != teacher.labels().labels())
    throw ConfigError(located(path, "the cache key's label list is not the teacher's",
                              "build the key with FeatureCacheKey::make from this teacher"));
  if (key.features.empty())
    throw ConfigError(located(path, "no features to cache", "a feature cache holds what distill.features terms read"));
  FeatureRequest request;
  for (const auto& name : key.features)
    if (!request_flag(name, request))
      throw ConfigError(located(path, "'" + name + "' is not a teacher feature a cache can hold",
                                "hidden.i, attn.i, attn_scores.i, query.i, key.i or value.i"));
  // Length-sorted batches; rows are stored in this order, so each batch fills one block of every feature.
  const std::vector<int64_t> order = cache_write_order(data);
  std::vector<int64_t> rows(static_cast<size_t>(N)), lengths(static_cast<size_t>(N));
  int64_t tokens = 0, squares = 0;  // Σ L_i, Σ L_i²
  for (int64_t i = 0; i < N; ++i) {
    const TextExample& ex = data[static_cast<size_t>(order[static_cast<size_t>(i)])];
    rows[static_cast<size_t>(i)] = ex.row;
    lengths[static_cast<size_t>(i)] = static_cast<int64_t>(ex.encoding.size());
    tokens += lengths[static_cast<size_t>(i)];
    squares += lengths[static_cast<size_t>(i)] * lengths[static_cast<size_t>(i)];
  }

  BucketBatcherOptions bo;
  bo.batch_size = options.batch_size;
  bo.shuffle = false;
  BucketBatcher batcher(data, bo, teacher.tokenizer().pad_id());
  LiveTeacher live(teacher);
  const auto dtype = base.dtype == "F16" ? torch::kFloat16 : torch::kFloat32;
  const size_t F = key.features.size();
  std::vector<std::vector<int64_t>> shapes(F);                   // row shapes, known after the first batch
  std::vector<torch::Tensor> values(F);                          // (Σ_i n_i) each, file order
  std::vector<int64_t> offsets(F, 0);                            // where the next row goes
  torch::Tensor logits = torch::empty({N, C}, torch::kFloat32);  // (N, C), file order
  std::map<std::string, std::string> metadata;
  FeatureCacheWriteResult result;
  result.rows = N;
  result.tokens = tokens;
  ProgressBar bar("cache features", (N + options.batch_size - 1) / options.batch_size, "batch", options.progress);
  for (int64_t b0 = 0; b0 < N; b0 += options.batch_size) {
    const int64_t B = std::min(N, b0 + options.batch_size) - b0;
    const Batch batch = batcher.collate(std::vector<int64_t>(order.begin() + b0, order.begin() + b0 + B));
    const int64_t T = batch.input_ids.size(1);
    ModelOutput out = live.teach(batch, request);
    const torch::Tensor l = out.logits.to(torch::kCPU);  // (B, C)
    if (l.dim() != 2 || l.size(0) != B || l.size(1) != C)
      throw Error(located(path, "teacher returned logits of shape " + shape_string(l) + ", expected (" +
                                    std::to_string(B) + ", " + std::to_string(C) + ")"));
    logits.narrow(0, b0, B).copy_(l);
    const torch::Tensor kept = batch.attention_mask.sum(1).to(torch::kCPU, torch::kLong).contiguous();  // (B)
    for (int64_t r = 0; r < B; ++r)
      if (kept.data_ptr<int64_t>()[r] != lengths[static_cast<size_t>(b0 + r)])
        throw Error(located(data.source() + ": row " + std::to_string(rows[static_cast<size_t>(b0 + r)]),
                            "its attention mask keeps " + std::to_string(kept.data_ptr<int64_t>()[r]) + " of " +
                                std::to_string(lengths[static_cast<size_t>(b0 + r)]) + " tokens"));
    for (size_t f = 0; f < F; ++f) {
      const std::string& name = key.features[f];
      auto it = out.features.find(name);
      if (it == out.features.end()) {
        std::string known;
        for (const auto& [k, v] : out.features) known += (known.empty() ? "" : ", ") + k;
        throw ConfigError(located(path, "the teacher does not produce the feature '" + name + "'",
                                  "it produces " + (known.empty() ? std::string("none of that kind") : known)));
      }
      const torch::Tensor t = it->second.to(torch::kCPU);  // (B, T, H) or (B, heads, T, T)
      if (b0 == 0) shapes[f] = row_shape(path, name, t, T);
      if (!torch::isfinite(t).all().item<bool>())
        throw DataError(
            located(data.source(), "the teacher's '" + name + "' is not finite", "check the teacher folder"));
    }
    if (b0 == 0) {
      // The size, from the row lengths and the feature shapes, before anything is allocated or written.
      uint64_t payload = static_cast<uint64_t>(N) * (8 + 8 + 4 * static_cast<uint64_t>(C));
      std::vector<int64_t> sizes(F);
      std::map<std::string, std::string> shapes_json;
      for (size_t f = 0; f < F; ++f) {
        const auto t_dims = std::count(shapes[f].begin(), shapes[f].end(), -1);
        sizes[f] = numel_of(at_length(shapes[f], 1)) * (t_dims == 1 ? tokens : squares);
        payload += static_cast<uint64_t>(sizes[f]) * (dtype == torch::kFloat16 ? 2 : 4);
        shapes_json[key.features[f]] = shape_text(shapes[f]);
      }
      metadata = base.to_metadata();
      metadata["features"] = json_list(key.features);
      metadata["feature_shapes"] = nlohmann::json(shapes_json).dump();
      metadata["num_rows"] = std::to_string(N);
      metadata["num_classes"] = std::to_string(C);
      metadata["num_tokens"] = std::to_string(tokens);
      // The header: the metadata, about 96 bytes a tensor entry, format, version, checksum, alignment.
      uint64_t header = 8 + 256 + 96 * (3 + F);
      for (const auto& [k, v] : metadata) header += k.size() + v.size() + 8;
      result.planned_bytes = payload + header;
      log_info(strf("the feature cache %s: %zu teacher features (%s, %s) over %lld rows (%lld tokens): %llu bytes (%s)",
                    path.c_str(), F, json_list(key.features).c_str(), base.dtype.c_str(), static_cast<long long>(N),
                    static_cast<long long>(tokens), static_cast<unsigned long long>(result.planned_bytes),
                    gigabytes(result.planned_bytes).c_str()));
      check_free_space(path, result.planned_bytes, options.free_margin);
      // Allocated only after the check; in file order, each batch's rows are one block.
      for (size_t f = 0; f < F; ++f) values[f] = torch::empty({sizes[f]}, dtype);
    }
    for (size_t f = 0; f < F; ++f) {
      const torch::Tensor t = out.features.at(key.features[f]).to(torch::kCPU);
      const int64_t from = offsets[f];
      for (int64_t r = 0; r < B; ++r) {
        const int64_t L = lengths[static_cast<size_t>(b0 + r)];
        const auto block = at_length(shapes[f], L);
        const int64_t n = numel_of(block);
        values[f].narrow(0, offsets[f], n).view(block).copy_(real_positions(t[r], shapes[f], L));
        offsets[f] += n;
      }
      if (dtype == torch::kFloat16 && !torch::isfinite(values[f].narrow(0, from, offsets[f] - from)).all().item<bool>())
        throw ConfigError(located(path, "the teacher's '" + key.features[f] + "' exceeds the fp16 range (65504)",
                                  "cache the features in float32: distill.features_fp16: false"));
    }
    bar.update();
  }
  bar.finish();
  if (!torch::isfinite(logits).all().item<bool>())
    throw DataError(located(data.source(), "the teacher's logits are not finite", "check the teacher folder"));

  NamedTensors tensors{{"rows", torch::tensor(rows, torch::kLong)},
                       {"lengths", torch::tensor(lengths, torch::kLong)},
                       {"logits", logits}};
  for (size_t f = 0; f < F; ++f) tensors.emplace_back(key.features[f], values[f]);
  write_cache_file(path, kFormat, tensors, std::move(metadata));
  result.bytes = fs::file_size(path);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::unique_ptr<CachedFeatures> CachedFeatures::open(const std::string& path, const FeatureCacheKey& expected) {
  const CacheFileContents file = read_cache_file(path, kFormat);
  std::unique_ptr<CachedFeatures> cache(new CachedFeatures());
  cache->path_ = path;
  FeatureCacheKey& key = cache->key_;
  key.base = CacheKey::from_metadata(file.metadata, path);
  std::map<std::string, std::string> shapes;
  try {
    key.features = nlohmann::json::parse(file.metadata.count("features") ? file.metadata.at("features") : "")
                       .get<std::vector<std::string>>();
    shapes = nlohmann::json::parse(file.metadata.count("feature_shapes") ? file.metadata.at("feature_shapes") : "")
                 .get<std::map<std::string, std::string>>();
  } catch (const nlohmann::json::exception&) {
    throw cache_malformed(path, kFormat, "no valid features or feature_shapes in the metadata");
  }
  const auto malformed = [&](const std::string& what) { return cache_malformed(path, kFormat, what); };
  const int64_t C = cache_count(file, path, kFormat, "num_classes");
  if (C < 1 || static_cast<int64_t>(key.base.labels.size()) != C)
    throw malformed("num_classes " + std::to_string(C) + " does not match the label list");
  const torch::Tensor rows = cache_tensor(file, path, kFormat, "rows", torch::kLong);        // (N)
  const torch::Tensor lengths = cache_tensor(file, path, kFormat, "lengths", torch::kLong);  // (N)
  cache->logits_ = cache_tensor(file, path, kFormat, "logits", torch::kFloat32);             // (N, C)
  const int64_t N = rows.numel();
  if (rows.dim() != 1 || !lengths.sizes().equals(rows.sizes()) || cache->logits_.dim() != 2 ||
      cache->logits_.size(0) != N || cache->logits_.size(1) != C || cache_count(file, path, kFormat, "num_rows") != N)
    throw malformed("rows, lengths and logits have shapes " + shape_string(rows) + ", " + shape_string(lengths) +
                    " and " + shape_string(cache->logits_) + ", expected (N), (N) and (N, " + std::to_string(C) +
                    ") with N = num_rows");
  const int64_t* r = rows.data_ptr<int64_t>();
  const int64_t* len = lengths.data_ptr<int64_t>();
  cache->lengths_.assign(len, len + N);
  cache->token_start_.assign(static_cast<size_t>(N) + 1, 0);
  cache->square_start_.assign(static_cast<size_t>(N) + 1, 0);
  cache->index_.reserve(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    if (len[i] < 1) throw malformed("row " + std::to_string(r[i]) + " has length " + std::to_string(len[i]));
    // Checked: the lengths come from the file, and a sum that wraps could match a short tensor.
    const auto at = static_cast<size_t>(i);
    int64_t square = 0;
    if (__builtin_add_overflow(cache->token_start_[at], len[i], &cache->token_start_[at + 1]) ||
        __builtin_mul_overflow(len[i], len[i], &square) ||
        __builtin_add_overflow(cache->square_start_[at], square, &cache->square_start_[at + 1]))
      throw malformed("row " + std::to_string(r[i]) + " has length " + std::to_string(len[i]) + ", too long");
    if (!cache->index_.emplace(r[i], i).second) throw malformed("row " + std::to_string(r[i]) + " appears twice");
  }
  if (cache_count(file, path, kFormat, "num_tokens") != cache->token_start_.back())
    throw malformed("num_tokens does not match the row lengths");
  const auto dtype = key.base.dtype == "F16" ? torch::kFloat16 : torch::kFloat32;
  for (const auto& name : key.features) {
    Stored s;
    auto shape = shapes.find(name);
    if (shape == shapes.end()) throw malformed("no row shape for feature '" + name + "'");
    std::string part;
    std::stringstream in(shape->second);
    while (std::getline(in, part, ',')) {
      int64_t d = 0;
      try {
        d = part == "T" ? -1 : std::stoll(part);
      } catch (const std::exception&) {
      }
      if (d == 0 || d < -1) throw malformed("feature '" + name + "' has row shape '" + shape->second + "'");
      s.shape.push_back(d);
      if (d < 0)
        ++s.t_dims;
      else if (__builtin_mul_overflow(s.per_row, d, &s.per_row))
        throw malformed("feature '" + name + "' has row shape '" + shape->second + "', too large");
    }
    if (s.t_dims < 1 || s.t_dims > 2) throw malformed("feature '" + name + "' has row shape '" + shape->second + "'");
    s.values = cache_tensor(file, path, kFormat, name, dtype);
    int64_t n = 0;
    const bool too_large = __builtin_mul_overflow(
        s.per_row, s.t_dims == 1 ? cache->token_start_.back() : cache->square_start_.back(), &n);
    if (too_large || s.values.dim() != 1 || s.values.numel() != n)
      throw malformed("feature '" + name + "' has shape " + shape_string(s.values) + ", its row lengths need (" +
                      std::to_string(n) + ")");
    cache->stored_[name] = std::move(s);
  }
  for (const auto& [name, t] : file.tensors)
    if (!kFixedTensors.count(name) && !cache->stored_.count(name))
      throw malformed("tensor '" + name + "' is not a listed feature");

  check_cache_key(path, kFormat, key.base, expected.base);
  if (key.features != expected.features)
    throw_key_mismatch(path, kFormat,
                       {"features", "teacher features stored (the feature terms' layers)", json_list(key.features),
                        json_list(expected.features), false});
  return cache;
}

std::vector<int64_t> CachedFeatures::indices(const Batch& batch) const {
  return cached_rows(batch, index_, path_, kFormat);
}

torch::Tensor CachedFeatures::logits(const Batch& batch) { return teach_named(batch, {}).logits; }

ModelOutput CachedFeatures::teach(const Batch& batch, const FeatureRequest& request) {
  std::vector<std::string> names;
  FeatureRequest held;  // the kinds the cache holds
  for (const auto& [name, s] : stored_) {
    if (requested(name, request)) names.push_back(name);
    request_flag(name, held);
  }
  const std::pair<bool, const char*> missing[] = {{request.hidden && !held.hidden, "hidden.*"},
                                                  {request.attention && !held.attention, "attn.*"},
                                                  {request.attention_scores && !held.attention_scores, "attn_scores.*"},
                                                  {request.qkv && !held.qkv, "query/key/value.*"}};
  for (const auto& [absent, kind] : missing)
    if (absent)
      throw ConfigError(located(
          path_,
          std::string("the feature cache holds no ") + kind + " features (it holds " + json_list(key_.features) + ")",
          "delete it, and kd distill builds it again for the configured terms"));
  return teach_named(batch, names);
}

ModelOutput CachedFeatures::teach_named(const Batch& batch, const std::vector<std::string>& names) {
  for (const auto& name : names)
    if (!stored_.count(name))
      throw ConfigError(
          located(path_ + ": " + name,
                  "feature '" + name + "' is not in the feature cache (it holds " + json_list(key_.features) + ")",
                  "delete it, and kd distill builds it again for the configured terms"));
  const std::vector<int64_t> idx = indices(batch);
  const int64_t B = static_cast<int64_t>(idx.size());
  int64_t T = 0;
  for (int64_t i : idx) T = std::max(T, lengths_[static_cast<size_t>(i)]);
  if (batch.attention_mask.defined()) {
    // The rows must be tokenized as they were cached: the same real positions.
    const torch::Tensor kept = batch.attention_mask.sum(1).to(torch::kCPU, torch::kLong).contiguous();  // (B)
    T = batch.attention_mask.size(1);
    for (int64_t b = 0; b < B; ++b)
      if (kept.data_ptr<int64_t>()[b] != lengths_[static_cast<size_t>(idx[static_cast<size_t>(b)])])
        throw DataError(located(path_,
                                "row " + std::to_string(batch.row_ids[static_cast<size_t>(b)]) + " has " +
                                    std::to_string(kept.data_ptr<int64_t>()[b]) + " tokens, the cache " +
                                    std::to_string(lengths_[static_cast<size_t>(idx[static_cast<size_t>(b)])]),
                                "the cache must be built from the same data, tokenizer and max_length"));
  }
  const torch::Device device = batch.input_ids.defined() ? batch.input_ids.device() : torch::Device(torch::kCPU);
  ModelOutput out;
  out.logits = logits_.index_select(0, torch::tensor(idx, torch::kLong)).to(device);  // (B, C)
  for (const auto& name : names) {
    const Stored& s = stored_.at(name);
    std::vector<int64_t> padded = {B};
    for (int64_t d : s.shape) padded.push_back(d < 0 ? T : d);
    torch::Tensor f = torch::zeros(padded, torch::kFloat32);  // (B, T, H) or (B, heads, T, T)
    for (int64_t b = 0; b < B; ++b) {
      const auto i = static_cast<size_t>(idx[static_cast<size_t>(b)]);
      const int64_t L = lengths_[i];
      const auto block = at_length(s.shape, L);
      const int64_t start = s.per_row * (s.t_dims == 1 ? token_start_[i] : square_start_[i]);
      real_positions(f[b], s.shape, L).copy_(s.values.narrow(0, start, numel_of(block)).view(block));
    }
    out.features[name] = f.to(device);
  }
  return out;
}

std::unique_ptr<CachedFeatures> cached_features(const std::string& path, TextClassifier& teacher,
                                                const TextDataset& rows, const FeatureCacheKey& key,
                                                const FeatureCacheWriteOptions& options) {
  if (!fs::exists(path)) {
    log_info(strf("caching the teacher's features over %zu rows of %s into %s", rows.size(), rows.source().c_str(),
                  path.c_str()));
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    const auto r = write_feature_cache(path, teacher, rows, key, options);
    log_info(strf("wrote %s: %llu bytes (%s) in %.1f s", path.c_str(), static_cast<unsigned long long>(r.bytes),
                  gigabytes(r.bytes).c_str(), r.seconds));
  } else {
    log_info("using the cached teacher features in " + path);
  }
  return CachedFeatures::open(path, key);
}

}  // namespace kd
