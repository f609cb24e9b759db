// Helpers of the fuzz targets whose readers take a path rather than bytes, and of the cache targets,
// whose files carry a checksum that almost every mutation breaks.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/safetensors.h"
#include "kd/knowledge/cache_file.h"

namespace kd::fuzz {

// A temporary file for the inputs of one target in this process: created on first use, overwritten by
// every input, removed when the process exits.
class InputFile {
 public:
  explicit InputFile(const std::string& name)
      : path_((std::filesystem::temp_directory_path() /
               ("kd_fuzz_" + std::to_string(::getpid()) + "_" + name)).string()) {}
  ~InputFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Writes the bytes and returns the path.
  const std::string& write(const uint8_t* data, size_t size) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::logic_error("fuzz: cannot write " + path_);
    return path_;
  }
  const std::string& write(const std::string& bytes) {
    return write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The cache (a safetensors file with a "checksum" in its metadata, kd/knowledge/cache_file.h) at
// `path` written again to `out` with its checksum recomputed over what the file holds, so that a
// mutation reaches the structure checks behind the checksum. False when `path` is not a safetensors
// file with a checksum, or a tensor cannot be read. Tensors are read as read_cache_file reads them.
inline bool resign_cache(const std::string& path, const std::string& out) {
  try {
    const SafeTensorsFile f(path);
    auto meta = f.metadata();
    if (!meta.count("checksum")) return false;
    NamedTensors tensors;
    for (const auto& name : f.names()) {
      const std::string& dt = f.info(name).dtype;
      const auto stored = dt == "F16" ? torch::kFloat16 : dt == "BF16" ? torch::kBFloat16
                                                        : dt == "F64"  ? torch::kFloat64
                                                                       : torch::kFloat32;
      tensors.emplace_back(name, f.load(name, stored));
    }
    meta["checksum"] = cache_checksum(tensors, meta);
    save_safetensors(out, tensors, meta);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// The "rows" tensor of a cache file (I64), for looking rows up; empty when it cannot be read.
inline std::vector<int64_t> cache_rows(const std::string& path) {
  try {
    const SafeTensorsFile f(path);
    if (!f.contains("rows") || f.info("rows").dtype != "I64") return {};
    const torch::Tensor r = f.load("rows").reshape(-1).contiguous();
    return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
  } catch (const Error&) {
    return {};
  }
}

}  // namespace kd::fuzz
