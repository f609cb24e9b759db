#include "kd/knowledge/cache_file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include "kd/io/safetensors.h"
#include "kd/util/fnv1a.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// Data section start from the 8-byte header length; the reader already checked it fits the file.
uint64_t data_start(const std::string& path, const CacheFormat& format) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[8] = {};
  in.read(reinterpret_cast<char*>(b), 8);
  if (!in) throw cache_corrupt(path, format, "cannot read the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  return 8 + n;
}

// Floating tensors are kept as stored: the checksum covers the stored bytes, and an F16 cache held as
// F16 takes half the memory.
torch::ScalarType stored_float_type(const std::string& dtype) {
  if (dtype == "F16") return torch::kFloat16;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F64") return torch::kFloat64;
  return torch::kFloat32;
}

// The safetensors name of the dtypes caches store, for messages.
std::string dtype_name(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    default: return c10::toString(type);
  }
}

}  // namespace

FormatError cache_corrupt(const std::string& path, const CacheFormat& format, const std::string& what) {
  return FormatError(located(path, "corrupt or truncated " + format.noun + ": " + what, format.rebuild));
}

FormatError cache_malformed(const std::string& path, const CacheFormat& format, const std::string& what) {
  return FormatError(located(path, "malformed " + format.noun + ": " + what, format.rebuild));
}

std::string cache_checksum(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  Fnv1a64 h;
  for (const auto& [name, t] : tensors) {
    const torch::Tensor c = t.to(torch::kCPU).contiguous();  // no copy for the CPU tensors of a cache
    h.update(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  for (const auto& [k, v] : metadata) {
    if (k == "checksum") continue;
    h.update_field(k);
    h.update_field(v);
  }
  return h.hex();
}

void write_cache_file(const std::string& path, const CacheFormat& format, const NamedTensors& tensors,
                      std::map<std::string, std::string> metadata) {
  metadata["format"] = format.name;
  metadata["version"] = std::to_string(format.version);
  metadata["checksum"] = cache_checksum(tensors, metadata);
  save_safetensors(path, tensors, metadata);
}

CacheFileContents read_cache_file(const std::string& path, const CacheFormat& format) {
  if (!fs::exists(path)) throw IoError(located(path, "no such file", "build the cache with " + format.build));
  std::unique_ptr<SafeTensorsFile> file;
  try {
    file = std::make_unique<SafeTensorsFile>(path);
  } catch (const IoError& e) {
    if (!fs::is_regular_file(path)) throw;
    throw cache_corrupt(path, format, e.what());
  } catch (const FormatError& e) {
    throw cache_corrupt(path, format, e.what());
  }
  const auto& meta = file->metadata();
  auto name = meta.find("format");
  if (name == meta.end() || name->second != format.name)
    throw FormatError(located(path, "not a kd " + format.noun + " (its metadata has no format '" + format.name + "')",
                              "build one with " + format.build));
  auto version = meta.find("version");
  int64_t v = -1;
  try {
    if (version != meta.end()) v = std::stoll(version->second);
  } catch (const std::exception&) {
  }
  if (v < 1) throw cache_malformed(path, format, "no valid format version");
  if (v > format.version)
    throw FormatError(located(path,
                              format.noun + " format version " + std::to_string(v) + " is newer than this kd reads (" +
                                  std::to_string(format.version) + ")",
                              "update kd, or " + format.rebuild));
  if (!meta.count("checksum")) throw cache_corrupt(path, format, "no checksum in the metadata");

  // The tensors must fill the data section exactly: extra bytes mean the file was damaged or appended to.
  uint64_t end = 0;
  for (const auto& n : file->names()) end = std::max(end, file->info(n).end);
  const uint64_t size = fs::file_size(path), expected_size = data_start(path, format) + end;
  if (size != expected_size)
    throw cache_corrupt(
        path, format, "file has " + std::to_string(size) + " bytes, its tensors need " + std::to_string(expected_size));
  CacheFileContents contents;
  contents.metadata = meta;
  NamedTensors tensors;
  try {
    for (const auto& n : file->names()) {
      tensors.emplace_back(n, file->load(n, stored_float_type(file->info(n).dtype)));
      contents.tensors[n] = tensors.back().second;  // shares the storage: one copy of the payload
    }
  } catch (const Error& e) {
    throw cache_corrupt(path, format, e.what());
  }
  const std::string sum = cache_checksum(tensors, meta);
  if (sum != meta.at("checksum"))
    throw cache_corrupt(path, format,
                        "checksum mismatch (recorded " + meta.at("checksum") + ", contents hash to " + sum + ")");
  return contents;
}

void throw_key_mismatch(const std::string& path, const CacheFormat& format, const KeyMismatch& m) {
  const std::string what =
      located(path + ": " + m.field,
              "mismatch in " + m.what + ": the cache has '" + m.cached + "', expected '" + m.expected + "'",
              format.rebuild + " for this teacher, data file and settings");
  if (m.data) throw DataError(what);
  throw ConfigError(what);
}

void check_cache_key(const std::string& path, const CacheFormat& format, const CacheKey& cached,
                     const CacheKey& expected) {
  if (auto m = first_mismatch(cached, expected)) throw_key_mismatch(path, format, *m);
}

const torch::Tensor& cache_tensor(const CacheFileContents& contents, const std::string& path, const CacheFormat& format,
                                  const std::string& name, torch::ScalarType type) {
  auto it = contents.tensors.find(name);
  if (it == contents.tensors.end()) throw cache_malformed(path, format, "no tensor '" + name + "'");
  if (it->second.scalar_type() != type)
    throw cache_malformed(path, format, "tensor '" + name + "' is not " + dtype_name(type));
  return it->second;
}

int64_t cache_count(const CacheFileContents& contents, const std::string& path, const CacheFormat& format,
                    const std::string& name) {
  auto it = contents.metadata.find(name);
  int64_t v = -1;
  size_t used = 0;
  try {
    if (it != contents.metadata.end()) v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
  }
  if (v < 0 || it == contents.metadata.end() || used != it->second.size())
    throw cache_malformed(path, format, "no valid " + name);
  return v;
}

std::vector<int64_t> cached_rows(const Batch& batch, const std::unordered_map<int64_t, int64_t>& index,
                                 const std::string& path, const CacheFormat& format) {
  if (static_cast<int64_t>(batch.row_ids.size()) != batch.size())
    throw DataError(located(path,
                            "the batch has " + std::to_string(batch.size()) + " examples but " +
                                std::to_string(batch.row_ids.size()) + " row ids",
                            "cached knowledge is looked up by Batch::row_ids"));
  std::vector<int64_t> idx(batch.row_ids.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    auto it = index.find(batch.row_ids[i]);
    if (it == index.end())
      throw DataError(located(path,
                              "row " + std::to_string(batch.row_ids[i]) + " of the data is not in the cache (" +
                                  std::to_string(index.size()) + " rows)",
                              "the cache must be built from the same data file; " + format.rebuild));
    idx[i] = it->second;
  }
  return idx;
}

std::vector<int64_t> cache_write_order(const TextDataset& data) {
  std::unordered_set<int64_t> seen;
  for (const TextExample& ex : data.examples())
    if (!seen.insert(ex.row).second)
      throw DataError(located(data.source(), "row " + std::to_string(ex.row) + " appears twice",
                              "cache the rows of one data file, each once"));
  std::vector<int64_t> order(data.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return data[static_cast<size_t>(a)].encoding.size() < data[static_cast<size_t>(b)].encoding.size();
  });
  return order;
}

std::string shape_string(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

}  // namespace kd
