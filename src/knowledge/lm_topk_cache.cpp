#include "kd/knowledge/lm_topk_cache.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <limits>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/text/bpe_tokenizer.h"
#include "kd/util/fnv1a.h"
#include "kd/util/log.h"
#include "kd/util/progress_bar.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

const char kMagic[8] = {'K', 'D', 'L', 'M', 'T', 'O', 'P', 'K'};
constexpr double kRestFloor = -100.0;

std::string checksum(const std::string& payload, const nlohmann::json& key) {
  Fnv1a64 h;
  h.update(payload);
  h.update_field(key.dump());
  return h.hex();
}

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

std::string tensor_bytes(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

}  // namespace

nlohmann::json LmCacheKey::to_json() const {
  return {{"teacher", teacher}, {"tokenizer", tokenizer}, {"data", data},        {"windows", windows},
          {"seq_len", seq_len}, {"top_k", top_k},         {"temperature", temperature}};
}

LmCacheKey LmCacheKey::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    LmCacheKey k;
    k.teacher = j.at("teacher").get<std::string>();
    k.tokenizer = j.at("tokenizer").get<std::string>();
    k.data = j.at("data").get<std::string>();
    // get<int64_t>() would convert a float (1e30) with undefined behaviour: integers only.
    const auto integer = [&](const char* name) {
      const auto& v = j.at(name);
      if (!v.is_number_integer()) throw FormatError(located(where, std::string("cache key field '") + name +
                                                                       "' is not an integer"));
      return v.get<int64_t>();
    };
    k.windows = integer("windows");
    k.seq_len = integer("seq_len");
    k.top_k = integer("top_k");
    k.temperature = j.at("temperature").get<double>();
    return k;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(located(where, std::string("malformed cache key: ") + e.what()));
  }
}

LmCacheKey make_lm_cache_key(const std::string& teacher_path, const Llama& teacher, const BpeTokenizer& tokenizer,
                             const torch::Tensor& windows, int64_t top_k, double temperature) {
  LmCacheKey k;
  const std::string weights = fs::is_directory(teacher_path) ? (fs::path(teacher_path) / "model.safetensors").string()
                                                             : teacher_path;
  k.teacher = hex64(fnv1a64_file(weights)) + "/" + std::to_string(teacher->options().num_layers) + " layers";
  Fnv1a64 t;
  for (int64_t i = 0; i < tokenizer.vocab_size(); ++i) t.update_field(tokenizer.token(i));
  k.tokenizer = t.hex();
  const auto w = windows.contiguous();
  Fnv1a64 d;
  d.update(w.data_ptr(), w.numel() * sizeof(int64_t));
  k.data = d.hex();
  k.windows = windows.size(0);
  k.seq_len = windows.size(1);
  k.top_k = top_k;
  k.temperature = temperature;
  return k;
}

void LmTopkCache::write(const std::string& path, Llama& teacher, const torch::Tensor& windows, const LmCacheKey& key,
                        int64_t batch_size, int64_t chunk, bool progress) {
  const int64_t N = windows.size(0), T = windows.size(1), k = key.top_k, V = teacher->options().vocab_size;
  if (k <= 0 || k >= V) throw ConfigError(located("distill.top_k", "must be in [1, vocabulary size)"));
  const int64_t R = N * (T - 1);
  auto ids = torch::empty({R, k}, torch::kInt32);
  auto lps = torch::empty({R, k}, torch::kFloat16);
  auto rest = torch::empty({R}, torch::kFloat32);
  teacher->eval();
  torch::InferenceMode im;
  const auto head = teacher->head_weight();
  ProgressBar bar("teacher top-" + std::to_string(k), N * T, "tok", progress);
  for (int64_t b0 = 0; b0 < N; b0 += batch_size) {
    const auto batch = windows.slice(0, b0, std::min(N, b0 + batch_size));  // (B, T)
    const auto h = teacher->forward_hidden(batch);
    const auto rows = h.slice(1, 0, -1).reshape({-1, h.size(2)});  // (B (T − 1), H)
    const int64_t base = b0 * (T - 1);
    for (int64_t a = 0; a < rows.size(0); a += chunk) {
      const int64_t e = std::min(rows.size(0), a + chunk);
      const auto lp = torch::log_softmax(rows.slice(0, a, e).matmul(head.t()) / key.temperature, 1);  // (C, V)
      auto [top, idx] = lp.topk(k, 1);
      const auto others = lp.scatter(1, idx, -std::numeric_limits<double>::infinity()).logsumexp(1);
      ids.slice(0, base + a, base + e).copy_(idx.to(torch::kInt32));
      lps.slice(0, base + a, base + e).copy_(top.to(torch::kFloat16));
      rest.slice(0, base + a, base + e).copy_(others.clamp_min(kRestFloor));
    }
    bar.update(batch.numel());
  }
  bar.finish();
  const std::string raw = tensor_bytes(ids) + tensor_bytes(lps) + tensor_bytes(rest);
  uLongf bound = compressBound(raw.size());
  std::string z(bound, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &bound, reinterpret_cast<const Bytef*>(raw.data()), raw.size(),
                6) != Z_OK)
    throw IoError(located(path, "zlib compression failed"));
  z.resize(bound);
  const auto kj = key.to_json();
  const nlohmann::json header = {{"format", "kd-lm-topk"}, {"key", kj},           {"rows", R},
                                 {"raw_bytes", raw.size()}, {"zlib_bytes", z.size()}, {"checksum", checksum(z, kj)}};
  const std::string hs = header.dump();
  std::string out(kMagic, 8);
  put<uint32_t>(out, static_cast<uint32_t>(kLmTopkCacheVersion));
  put<uint64_t>(out, hs.size());
  out += hs;
  out += z;
  fs::create_directories(fs::path(path).parent_path());
  write_file_atomic(path, out);
  log_info(strf("teacher top-%lld cache: %lld positions, %.1f MiB (%.1f MiB uncompressed) in %s",
                static_cast<long long>(k), static_cast<long long>(R), z.size() / 1048576.0, raw.size() / 1048576.0,
                path.c_str()));
}

LmTopkCache LmTopkCache::open(const std::string& path, const LmCacheKey& expected) {
  if (!fs::exists(path)) throw IoError(located(path, "no such cache file"));
  const std::string bytes = read_file(path);
  const auto bad = [&](const std::string& what) {
    return FormatError(located(path, what, "delete the file to rebuild the cache"));
  };
  if (bytes.size() < 20 || std::memcmp(bytes.data(), kMagic, 8) != 0) throw bad("not a kd LM top-k cache");
  uint32_t version;
  uint64_t hlen;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&hlen, bytes.data() + 12, 8);
  if (version > kLmTopkCacheVersion)
    throw bad("cache version " + std::to_string(version) + " is newer than this kd (" +
              std::to_string(kLmTopkCacheVersion) + ")");
  if (hlen > bytes.size() - 20) throw bad("truncated header");
  // Every header field is read here: a field missing or of another JSON type is a malformed header.
  uint64_t zlib_bytes = 0, raw_bytes = 0;
  int64_t R = 0;
  nlohmann::json key_json;
  std::string recorded;
  try {
    const nlohmann::json header = nlohmann::json::parse(bytes.substr(20, hlen));
    if (!header.is_object()) throw bad("malformed header");
    // Sizes must be integers: value<uint64_t>() converts a float (-1e19) with undefined behaviour.
    const auto size = [&](const char* name) -> const nlohmann::json& {
      static const nlohmann::json zero = 0;
      const auto it = header.find(name);
      if (it == header.end()) return zero;
      if (!it->is_number_integer()) throw bad("malformed header");
      return *it;
    };
    zlib_bytes = size("zlib_bytes").get<uint64_t>();
    raw_bytes = size("raw_bytes").get<uint64_t>();
    R = size("rows").get<int64_t>();
    key_json = header.at("key");
    recorded = header.value("checksum", "");
  } catch (const nlohmann::json::exception&) {
    throw bad("malformed header");
  }
  if (zlib_bytes != bytes.size() - 20 - hlen) throw bad("file is truncated or has trailing bytes");
  const std::string z = bytes.substr(20 + hlen);
  if (checksum(z, key_json) != recorded) throw bad("checksum mismatch (corrupt file)");

  LmTopkCache c;
  c.key_ = LmCacheKey::from_json(key_json, path);
  const auto& k = c.key_;
  auto mismatch = [&](const std::string& field, const std::string& what, const std::string& cached,
                      const std::string& want, bool data) {
    const std::string msg = "cache was built for another " + what + " (" + field + ": cached " + cached +
                            ", expected " + want + ")";
    const std::string hint = "delete " + path + " or pass --overwrite to rebuild it";
    if (data) throw DataError(located(path, msg, hint));
    throw ConfigError(located(path, msg, hint));
  };
  if (k.teacher != expected.teacher) mismatch("teacher", "teacher", k.teacher, expected.teacher, false);
  if (k.tokenizer != expected.tokenizer) mismatch("tokenizer", "tokenizer", k.tokenizer, expected.tokenizer, false);
  if (k.top_k != expected.top_k)
    mismatch("top_k", "top-k", std::to_string(k.top_k), std::to_string(expected.top_k), false);
  if (k.temperature != expected.temperature)
    mismatch("temperature", "temperature", std::to_string(k.temperature), std::to_string(expected.temperature), false);
  if (k.seq_len != expected.seq_len)
    mismatch("seq_len", "window length", std::to_string(k.seq_len), std::to_string(expected.seq_len), false);
  if (k.data != expected.data || k.windows != expected.windows)
    mismatch("data", "training text", k.data, expected.data, true);

  // In checked arithmetic: the sizes come from the file. Deflate compresses at most 1032:1, so a larger
  // raw size is refused before it is allocated.
  int64_t want_rows = 0;
  uint64_t want_bytes = 0;
  if (k.windows < 0 || k.seq_len < 1 || k.top_k < 1 || k.top_k > (int64_t{1} << 32) || R < 0 ||
      __builtin_mul_overflow(k.windows, k.seq_len - 1, &want_rows) || R != want_rows ||
      __builtin_mul_overflow(static_cast<uint64_t>(R), static_cast<uint64_t>(k.top_k * 6 + 4), &want_bytes) ||
      raw_bytes != want_bytes || raw_bytes / 1032 > z.size())
    throw bad("payload size does not match the header");
  std::string raw(raw_bytes, '\0');
  uLongf got = raw_bytes;
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &got, reinterpret_cast<const Bytef*>(z.data()), z.size()) !=
          Z_OK ||
      got != raw_bytes)
    throw bad("compressed payload is corrupt");
  const int64_t n = R * k.top_k;
  const char* p = raw.data();
  c.ids_ = torch::from_blob(const_cast<char*>(p), {R, k.top_k}, torch::kInt32).to(torch::kInt64);
  c.logprobs_ = torch::from_blob(const_cast<char*>(p + n * 4), {R, k.top_k}, torch::kFloat16).to(torch::kFloat32);
  c.rest_ = torch::from_blob(const_cast<char*>(p + n * 6), {R}, torch::kFloat32).clone();
  return c;
}

TokenTargets LmTopkCache::targets(const torch::Tensor& window_index) const {
  const int64_t P = key_.seq_len - 1;
  const auto rows = (window_index.to(torch::kInt64).unsqueeze(1) * P + torch::arange(P).unsqueeze(0)).reshape(-1);
  return TokenTargets::from_topk(ids_.index_select(0, rows), logprobs_.index_select(0, rows),
                                 rest_.index_select(0, rows));
}

}  // namespace kd
