// Writer for GGUF files (version 3, little-endian), the format kd/io/gguf.h reads and llama.cpp runs.
//
// File layout, in order:
//   "GGUF"  uint32 version (3)  uint64 tensor count  uint64 metadata count
//   metadata: key (uint64 length + UTF-8 bytes), uint32 value type, value; a string is uint64 length +
//             bytes, an array uint32 element type + uint64 count + the elements
//   tensor table: name, uint32 n_dims, uint64 ne[n_dims] (fastest-first: ne[0] is a row), uint32 ggml
//             type, uint64 offset from the start of the data section
//   zero padding to the alignment, then the data section: each tensor's bytes, padded with zeros so
//   that the next one starts at a multiple of the alignment.
// The alignment is 32 and is written as `general.alignment` (uint32) so readers need not assume it.
//
// Tensor types and their blocks (ggml's layouts; 32 elements a block for the quantized ones):
//   F32   4 bytes an element;  F16   IEEE half, rounded to nearest even
//   Q8_0  34 bytes: d = amax / 127 as fp16, then 32 int8 q = round(x / d) (halves away from zero)
//   Q4_0  18 bytes: d = m / -8 as fp16, where m is the element of largest magnitude with its sign (the
//         first on ties), then 16 bytes of q = min(15, trunc(x / d + 8.5)); byte j holds element j in
//         its low nibble and element j + 16 in its high nibble, and x = d * (q - 8)
// The scale is rounded to fp16 only when stored; the q are computed with the float32 d and 1/d, as ggml's
// reference quantizers (and the `gguf` Python package) do, so the bytes equal theirs. An all-zero block
// stores d = 0 (Q4_0: -0) and every q at its zero point.
// A quantized tensor's rows (its last PyTorch dimension) must be a multiple of 32 long: a block never
// spans two rows. Which tensors a model keeps in F32 is the exporter's choice (kd/models/causal_lm_gguf.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kd/io/gguf.h"

namespace kd {

class GgufWriter {
 public:
  static constexpr uint32_t kAlignment = 32;

  GgufWriter();  // starts with general.alignment

  // Metadata, written in the order added. A key added twice is a ConfigError naming it.
  void add_string(const std::string& key, const std::string& value);
  void add_bool(const std::string& key, bool value);
  // `type` is one of the integer value types; a value outside its range is a ConfigError.
  void add_int(const std::string& key, GgufValueType type, int64_t value);
  void add_uint32(const std::string& key, uint32_t value) { add_int(key, GgufValueType::UInt32, value); }
  void add_uint64(const std::string& key, uint64_t value);  // the whole uint64 range
  void add_float32(const std::string& key, float value);
  void add_float64(const std::string& key, double value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_ints(const std::string& key, GgufValueType elem_type, const std::vector<int64_t>& values);
  void add_floats(const std::string& key, const std::vector<float>& values);  // Float32 elements

  // A tensor in PyTorch order (any float dtype; stored with ne = its shape reversed), encoded now as
  // `type` (F32, F16, Q8_0 or Q4_0). ConfigError naming the tensor for another type, a name longer
  // than ggml's 63 bytes or given twice, or rows that do not split into 32-element blocks.
  void add_tensor(const std::string& name, const torch::Tensor& values, GgmlType type);

  // Writes the file through write_file_atomic: an error leaves neither a partial file nor the old one
  // changed. IoError naming `path` when it cannot be written.
  void write(const std::string& path) const;

  size_t num_tensors() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::string bytes;
  };
  std::vector<std::string> keys_;
  std::string kv_;  // encoded metadata entries
  std::vector<Tensor> tensors_;

  std::string& begin_entry(const std::string& key, GgufValueType type);
};

// ggml's encoding of `n` float32 values (a multiple of 32 for the quantized types) as `type` (F32, F16,
// Q8_0, Q4_0), appended to `out`. ConfigError for another type.
void quantize_ggml(GgmlType type, const float* src, int64_t n, std::string& out);

}  // namespace kd
