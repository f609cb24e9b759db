// Reader for GGUF files (the llama.cpp / ggml model format, versions 2 and 3, little-endian).
//
// Layout: "GGUF" magic, uint32 version, uint64 tensor count, uint64 metadata count; then the metadata
// key/values (key = uint64 length + UTF-8 bytes, uint32 value type, value; arrays are uint32 element
// type + uint64 count + elements); then one entry per tensor (name, uint32 n_dims, uint64 ne[n_dims],
// uint32 ggml type, uint64 offset); then padding up to `general.alignment` (default 32) where the data
// section starts. Tensor offsets are relative to that start and multiples of the alignment.
//
// Dimensions are listed fastest-first: ne[0] is the length of a row, so a PyTorch (out, in) weight has
// ne = [in, out]. `load` returns PyTorch order (ne reversed), dequantized to float32.
//
// Every count, length and offset is checked against the file size before it is trusted: a header cut
// short is an IoError ("truncated"), anything malformed (bad magic, unknown value or tensor type,
// unaligned offset, data past the end of the file) a FormatError; messages name the file and the key
// or tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kd {

// Metadata value types, numbered as in the format.
enum class GgufValueType : uint32_t {
  UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
  String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// Tensor element types (ggml_type numbering). Only the ones `dequantize_ggml` decodes are named; others
// are rejected when the file is opened.
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, BF16 = 30 };
const char* ggml_type_name(GgmlType t);

// One metadata value. Scalars keep their integer/float/bool/string value; arrays keep their elements
// in the vector that fits the element type (integers and bools in `ints`, floats in `floats`, strings
// in `strings`, nested arrays in `items`).
struct GgufValue {
  GgufValueType type = GgufValueType::UInt8;
  GgufValueType elem_type = GgufValueType::UInt8;  // arrays only
  uint64_t count = 0;                              // arrays only: number of elements
  int64_t i = 0;                                   // signed scalar integers and bools
  uint64_t u = 0;                                  // unsigned scalar integers
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufValue> items;

  bool is_array() const { return type == GgufValueType::Array; }
  bool is_integer() const;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // dims fastest-first, as stored
  uint64_t offset = 0;      // from the start of the data section
  uint64_t nbytes = 0;      // bytes in the file

  std::vector<int64_t> torch_shape() const;  // ne reversed
  int64_t numel() const;
};

class GgufFile {
 public:
  // Maps the file and validates the header, metadata and tensor table; tensor data is decoded on demand.
  explicit GgufFile(const std::string& path);
  // The same from bytes already in memory (kept by the object); `name` stands for the path in errors.
  static std::unique_ptr<GgufFile> from_bytes(std::string bytes, const std::string& name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // bytes from the start of the file
  uint64_t file_size() const { return size_; }

  // Keys in file order, and lookup. `get` throws FormatError naming the file and key when absent.
  const std::vector<std::string>& keys() const { return key_order_; }
  bool has(const std::string& key) const { return metadata_.count(key) > 0; }
  const GgufValue& get(const std::string& key) const;

  // Typed getters: FormatError when the key is missing (without a default) or has another type.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;  // any float or integer type
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;  // array of strings
  const std::vector<int64_t>& get_ints(const std::string& key) const;         // array of integers

  // Tensors in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensor_index_.count(name) > 0; }
  const GgufTensorInfo& tensor(const std::string& name) const;  // FormatError if absent

  // The tensor dequantized to float32, shape ne reversed (PyTorch order).
  torch::Tensor load(const std::string& name) const;
  // The raw bytes of a tensor as stored (for tests and hashing).
  const uint8_t* raw(const std::string& name) const;

 private:
  GgufFile() = default;

  std::string path_;
  const uint8_t* data_ = nullptr;  // the whole file, memory-mapped (or in `owned_`)
  uint64_t size_ = 0;
  bool mapped_ = false;
  std::string owned_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;

  void parse();
  std::string key_where(const std::string& key) const;
};

// Elements per block and bytes per block of a tensor type (F32: 1 and 4; Q4_1: 32 and 20).
int64_t ggml_block_size(GgmlType t);
int64_t ggml_block_bytes(GgmlType t);
// Whether the numeric value is one of the GgmlType enumerators.
bool ggml_type_known(uint32_t t);

// Decodes `n` elements (a multiple of the block size) of type `t` from `src` into float32.
void dequantize_ggml(GgmlType t, const uint8_t* src, int64_t n, float* dst);

}  // namespace kd
