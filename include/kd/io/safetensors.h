// Reader and writer for the safetensors format (Hugging Face): an 8-byte little-endian header length
// N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the raw little-endian tensor bytes. Offsets are relative to the end of the header.
//
// The reader validates everything before trusting it: header length within the file, valid JSON
// object, known dtype, shape x dtype size == end - begin, offsets inside the data section, no overlap.
// Errors are FormatError/IoError naming the file and the tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kd {

struct TensorInfo {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", "I64", "I32", "I8", "U8", "BOOL", "F64"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; // byte range within the data section
};

class SafeTensorsFile {
 public:
  // Opens and validates the header; tensor bytes are read on demand.
  explicit SafeTensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // in file order (sorted by offset)
  bool contains(const std::string& name) const { return infos_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // FormatError if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Whether `name` is an int8 tensor with per-row scales beside it (kd/io/int8_rows.h): it then
  // reads as the float tensor it stands for.
  bool int8_rows(const std::string& name) const;
  // Whether `name` reads as a floating-point tensor (a float dtype, or int8 rows).
  bool holds_float(const std::string& name) const;

  // Reads one tensor; floating types are converted to `float_type` (F16/BF16 -> F32 by default), int8
  // rows are dequantized to `float_type`, other integer types are returned as stored.
  torch::Tensor load(const std::string& name, torch::ScalarType float_type = torch::kFloat32) const;
  std::map<std::string, torch::Tensor> load_all(torch::ScalarType float_type = torch::kFloat32) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (made contiguous, moved to CPU) in the order given, atomically (temp file + rename).
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace kd
