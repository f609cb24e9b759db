#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "fuzz_files.h"
#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/knowledge/knowledge_cache.h"

namespace kd::fuzz {

namespace {

// Opens the cache and fetches the logits of a few of its rows, and of a row it does not hold.
void read_cache(const std::string& path) {
  std::unique_ptr<CachedKnowledge> cache;
  try {
    cache = CachedKnowledge::open_unchecked(path);
  } catch (const Error&) {
    return;
  }
  std::vector<int64_t> rows = cache_rows(path);
  if (static_cast<int64_t>(rows.size()) != cache->size())
    throw std::logic_error("knowledge cache: opened with " + std::to_string(cache->size()) + " rows, the file has " +
                           std::to_string(rows.size()));
  if (rows.size() > 4) rows.erase(rows.begin() + 2, rows.end() - 2);  // the first two and the last two
  Batch batch;
  batch.input_ids = torch::zeros({static_cast<int64_t>(rows.size()), 1}, torch::kLong);
  batch.row_ids = rows;
  for (int64_t r : rows)
    if (!cache->contains(r)) throw std::logic_error("knowledge cache: a row of the file is not found");
  const torch::Tensor logits = cache->logits(batch);
  if (logits.dim() != 2 || logits.size(0) != batch.size() || logits.size(1) != cache->num_classes() ||
      logits.scalar_type() != torch::kFloat32)
    throw std::logic_error("knowledge cache: logits of the wrong shape or type");
  int64_t absent = std::numeric_limits<int64_t>::min();
  while (cache->contains(absent)) ++absent;
  batch.input_ids = torch::zeros({1, 1}, torch::kLong);
  batch.row_ids = {absent};
  try {
    cache->logits(batch);
    throw std::logic_error("knowledge cache: logits of a row it does not hold");
  } catch (const DataError&) {
  }
}

}  // namespace

int knowledge_cache_input(const uint8_t* data, size_t size) {
  static InputFile file("knowledge.safetensors"), resigned("knowledge_resigned.safetensors");
  read_cache(file.write(data, size));
  // Most mutations break the checksum; the same file with its checksum recomputed reaches the rest.
  if (resign_cache(file.path(), resigned.path())) read_cache(resigned.path());
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::knowledge_cache_input(data, size);
}
#endif
