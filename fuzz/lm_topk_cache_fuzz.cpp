#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_files.h"
#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/knowledge/lm_topk_cache.h"
#include "kd/util/fnv1a.h"

namespace kd::fuzz {

namespace {

// The file's parts as kd/knowledge/lm_topk_cache.h lays them out: "KDLMTOPK", u32 version, u64 header
// length, the JSON header, the zlib payload. False when the bytes are too short for them.
bool split(const std::string& bytes, std::string& head, nlohmann::json& header, std::string& payload) {
  if (bytes.size() < 20) return false;
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data() + 12, 8);
  if (hlen > bytes.size() - 20) return false;
  head = bytes.substr(0, 12);
  payload = bytes.substr(20 + hlen);
  header = nlohmann::json::parse(bytes.substr(20, hlen), nullptr, /*allow_exceptions=*/false);
  return header.is_object();
}

// The key in the file's header, so that opening it gets past the key comparison.
LmCacheKey own_key(const nlohmann::json& header) {
  try {
    if (header.is_object() && header.contains("key")) return LmCacheKey::from_json(header["key"], "fuzz");
  } catch (const Error&) {
  }
  return {};
}

void read_cache(const std::string& path, const LmCacheKey& expected) {
  LmTopkCache cache;
  try {
    cache = LmTopkCache::open(path, expected);
  } catch (const Error&) {
    return;
  }
  const LmCacheKey& k = cache.key();
  if (cache.rows() != k.windows * (k.seq_len - 1)) throw std::logic_error("lm top-k cache: rows do not match the key");
  if (k.windows < 1 || k.seq_len < 2) return;
  const auto t = cache.targets(torch::tensor({int64_t{0}, k.windows - 1}, torch::kLong));
  if (t.rows() != 2 * (k.seq_len - 1) || t.topk_ids.size(1) != k.top_k)
    throw std::logic_error("lm top-k cache: targets of the wrong shape");
}

}  // namespace

int lm_topk_cache_input(const uint8_t* data, size_t size) {
  static InputFile file("lm_topk.bin"), resigned("lm_topk_resigned.bin");
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::string head, payload;
  nlohmann::json header;
  const bool parts = split(bytes, head, header, payload);
  const LmCacheKey key = parts ? own_key(header) : LmCacheKey{};
  read_cache(file.write(data, size), key);
  if (!parts || !header.contains("key")) return 0;
  // Most mutations break the checksum (FNV-1a 64 of the payload, then the key's JSON and a 0 byte) or
  // the payload size; the same file with both recomputed reaches the rest.
  Fnv1a64 h;
  h.update(payload);
  h.update_field(header["key"].dump());
  header["checksum"] = h.hex();
  header["zlib_bytes"] = payload.size();
  const std::string text = header.dump();
  std::string out = head;
  const uint64_t hlen = text.size();
  out.append(reinterpret_cast<const char*>(&hlen), 8);
  out += text;
  out += payload;
  read_cache(resigned.write(out), key);
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::lm_topk_cache_input(data, size);
}
#endif
