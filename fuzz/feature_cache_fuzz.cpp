#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_files.h"
#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/knowledge/feature_cache.h"

namespace kd::fuzz {

namespace {

// The key the cache says it was built with, so that opening it gets past the key comparison (the
// default key when the metadata has none).
FeatureCacheKey own_key(const std::string& path) {
  FeatureCacheKey key;
  try {
    const SafeTensorsFile f(path);
    key.base = CacheKey::from_metadata(f.metadata(), path);
    key.features = nlohmann::json::parse(f.metadata().at("features")).get<std::vector<std::string>>();
  } catch (const Error&) {
  } catch (const std::out_of_range&) {
  } catch (const nlohmann::json::exception&) {
  }
  return key;
}

// Opens the cache with its own key, then asks for the logits and every cached feature of a few rows.
void read_cache(const std::string& path) {
  std::unique_ptr<CachedFeatures> cache;
  try {
    cache = CachedFeatures::open(path, own_key(path));
  } catch (const Error&) {
    return;
  }
  std::vector<int64_t> rows = cache_rows(path);
  if (static_cast<int64_t>(rows.size()) != cache->size())
    throw std::logic_error("feature cache: opened with " + std::to_string(cache->size()) + " rows, the file has " +
                           std::to_string(rows.size()));
  if (rows.size() > 3) rows.erase(rows.begin() + 2, rows.end() - 1);  // the first two and the last
  Batch batch;
  batch.input_ids = torch::zeros({static_cast<int64_t>(rows.size()), 1}, torch::kLong);
  batch.row_ids = rows;
  const ModelOutput out = cache->teach_named(batch, cache->features());
  if (out.logits.dim() != 2 || out.logits.size(0) != batch.size() || out.logits.size(1) != cache->num_classes())
    throw std::logic_error("feature cache: logits of the wrong shape");
  for (const auto& name : cache->features()) {
    const auto it = out.features.find(name);
    if (it == out.features.end() || it->second.size(0) != batch.size())
      throw std::logic_error("feature cache: feature '" + name + "' missing or of the wrong batch size");
  }
  cache->logits(batch);
  FeatureRequest all;
  all.hidden = all.attention = all.attention_scores = all.qkv = true;
  try {
    cache->teach(batch, all);
  } catch (const ConfigError&) {  // a kind the cache does not hold
  }
}

}  // namespace

int feature_cache_input(const uint8_t* data, size_t size) {
  static InputFile file("features.safetensors"), resigned("features_resigned.safetensors");
  read_cache(file.write(data, size));
  // Most mutations break the checksum; the same file with its checksum recomputed reaches the rest.
  if (resign_cache(file.path(), resigned.path())) read_cache(resigned.path());
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::feature_cache_input(data, size);
}
#endif
