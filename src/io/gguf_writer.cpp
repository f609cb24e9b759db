// Writing GGUF files: metadata encoding, ggml's F16 / Q8_0 / Q4_0 quantizers, and the file layout
// (see kd/io/gguf_writer.h). Values are copied byte for byte, so the host must be little-endian, as
// every machine llama.cpp runs on is.
#include "kd/io/gguf_writer.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>

#include "kd/error.h"
#include "kd/io/atomic_file.h"

namespace kd {

namespace {

constexpr int64_t kQK = 32;
constexpr size_t kMaxNameBytes = 63;  // ggml's GGML_MAX_NAME (64) less the terminating zero

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_half(std::string& out, float x) { put<uint16_t>(out, c10::detail::fp16_ieee_from_fp32_value(x)); }

struct IntRange {
  int64_t lo;
  uint64_t hi;
  size_t bytes;
};

// The range and width of an integer value type; bytes 0 for a type that is not an integer.
IntRange int_range(GgufValueType t) {
  using L8 = std::numeric_limits<int8_t>;
  using L16 = std::numeric_limits<int16_t>;
  using L32 = std::numeric_limits<int32_t>;
  using L64 = std::numeric_limits<int64_t>;
  switch (t) {
    case GgufValueType::UInt8: return {0, 0xFFu, 1};
    case GgufValueType::Int8: return {L8::min(), static_cast<uint64_t>(L8::max()), 1};
    case GgufValueType::UInt16: return {0, 0xFFFFu, 2};
    case GgufValueType::Int16: return {L16::min(), static_cast<uint64_t>(L16::max()), 2};
    case GgufValueType::UInt32: return {0, 0xFFFFFFFFu, 4};
    case GgufValueType::Int32: return {L32::min(), static_cast<uint64_t>(L32::max()), 4};
    case GgufValueType::UInt64: return {0, std::numeric_limits<uint64_t>::max(), 8};
    case GgufValueType::Int64: return {L64::min(), static_cast<uint64_t>(L64::max()), 8};
    default: return {0, 0, 0};
  }
}

// Appends `v` as integer type `t` (two's complement, low bytes first); ConfigError naming `key` when
// `t` is not an integer type or `v` is outside its range.
void put_int(std::string& out, GgufValueType t, int64_t v, const std::string& key) {
  const auto r = int_range(t);
  if (r.bytes == 0)
    throw ConfigError(located("GGUF key '" + key + "'", std::string(gguf_value_type_name(t)) + " is not an integer type"));
  if (v < r.lo || (v > 0 && static_cast<uint64_t>(v) > r.hi))
    throw ConfigError(located("GGUF key '" + key + "'", std::to_string(v) + " does not fit " + gguf_value_type_name(t)));
  const auto bits = static_cast<uint64_t>(v);
  out.append(reinterpret_cast<const char*>(&bits), r.bytes);
}

void quantize_q8_0(const float* x, int64_t n, std::string& out) {
  for (int64_t b = 0; b < n; b += kQK, x += kQK) {
    float amax = 0;
    for (int64_t j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_half(out, d);
    for (int64_t j = 0; j < kQK; ++j) out.push_back(static_cast<char>(static_cast<int8_t>(std::round(x[j] * id))));
  }
}

void quantize_q4_0(const float* x, int64_t n, std::string& out) {
  for (int64_t b = 0; b < n; b += kQK, x += kQK) {
    // The element of largest magnitude, with its sign: d < 0 when it is positive, so that element
    // lands on q = 0 and the other side of zero gets the eight steps up to 15.
    float m = x[0];
    for (int64_t j = 1; j < kQK; ++j)
      if (std::fabs(x[j]) > std::fabs(m)) m = x[j];
    const float d = m / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_half(out, d);
    uint8_t q[kQK];
    for (int64_t j = 0; j < kQK; ++j) {
      // Rounded to float32 before the offset is added, as ggml does; volatile keeps a compiler from
      // fusing the two into one multiply-add (which would round once and change some nibbles).
      volatile float scaled = x[j] * id;
      q[j] = static_cast<uint8_t>(std::min(15, static_cast<int>(scaled + 8.5f)));
    }
    for (int64_t j = 0; j < kQK / 2; ++j) out.push_back(static_cast<char>(q[j] | (q[j + kQK / 2] << 4)));
  }
}

}  // namespace

void quantize_ggml(GgmlType type, const float* src, int64_t n, std::string& out) {
  switch (type) {
    case GgmlType::F32:
      out.append(reinterpret_cast<const char*>(src), static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
      for (int64_t k = 0; k < n; ++k) put_half(out, src[k]);
      return;
    case GgmlType::Q8_0: quantize_q8_0(src, n, out); return;
    case GgmlType::Q4_0: quantize_q4_0(src, n, out); return;
    default:
      throw ConfigError(std::string("GGUF writer: cannot encode ") + ggml_type_name(type) + " (F32, F16, Q8_0, Q4_0)");
  }
}

GgufWriter::GgufWriter() { add_uint32("general.alignment", kAlignment); }

std::string& GgufWriter::begin_entry(const std::string& key, GgufValueType type) {
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end())
    throw ConfigError(located("GGUF key '" + key + "'", "added twice"));
  keys_.push_back(key);
  put_string(kv_, key);
  put<uint32_t>(kv_, static_cast<uint32_t>(type));
  return kv_;
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  put_string(begin_entry(key, GgufValueType::String), value);
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  put<uint8_t>(begin_entry(key, GgufValueType::Bool), value ? 1 : 0);
}

void GgufWriter::add_int(const std::string& key, GgufValueType type, int64_t value) {
  std::string v;
  put_int(v, type, value, key);  // checked before the key is taken
  begin_entry(key, type) += v;
}

void GgufWriter::add_uint64(const std::string& key, uint64_t value) {
  put<uint64_t>(begin_entry(key, GgufValueType::UInt64), value);
}

void GgufWriter::add_float32(const std::string& key, float value) {
  put<float>(begin_entry(key, GgufValueType::Float32), value);
}

void GgufWriter::add_float64(const std::string& key, double value) {
  put<double>(begin_entry(key, GgufValueType::Float64), value);
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  auto& out = begin_entry(key, GgufValueType::Array);
  put<uint32_t>(out, static_cast<uint32_t>(GgufValueType::String));
  put<uint64_t>(out, values.size());
  for (const auto& s : values) put_string(out, s);
}

void GgufWriter::add_ints(const std::string& key, GgufValueType elem_type, const std::vector<int64_t>& values) {
  std::string elems;
  for (auto v : values) put_int(elems, elem_type, v, key);
  auto& out = begin_entry(key, GgufValueType::Array);
  put<uint32_t>(out, static_cast<uint32_t>(elem_type));
  put<uint64_t>(out, values.size());
  out += elems;
}

void GgufWriter::add_floats(const std::string& key, const std::vector<float>& values) {
  auto& out = begin_entry(key, GgufValueType::Array);
  put<uint32_t>(out, static_cast<uint32_t>(GgufValueType::Float32));
  put<uint64_t>(out, values.size());
  for (auto v : values) put<float>(out, v);
}

void GgufWriter::add_tensor(const std::string& name, const torch::Tensor& values, GgmlType type) {
  const std::string where = "GGUF tensor '" + name + "'";
  if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::Q8_0 && type != GgmlType::Q4_0)
    throw ConfigError(located(where, std::string("cannot encode ") + ggml_type_name(type), "F32, F16, Q8_0 or Q4_0"));
  if (name.empty() || name.size() > kMaxNameBytes)
    throw ConfigError(located(where, "a tensor name must be 1 to " + std::to_string(kMaxNameBytes) + " bytes"));
  for (const auto& t : tensors_)
    if (t.name == name) throw ConfigError(located(where, "added twice"));
  const auto w = values.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t row = w.dim() ? w.size(-1) : 1;
  if (row % ggml_block_size(type) != 0)
    throw ConfigError(located(where, "rows of " + std::to_string(row) + " do not split into " + ggml_type_name(type) +
                                         " blocks of " + std::to_string(ggml_block_size(type)),
                              "keep this tensor in F32 or F16"));
  Tensor t{name, type, {}, {}};
  for (int64_t d = w.dim() - 1; d >= 0; --d) t.ne.push_back(w.size(d));
  if (t.ne.empty()) t.ne.push_back(1);  // ggml has no 0-d tensors
  t.bytes.reserve(static_cast<size_t>(w.numel() / ggml_block_size(type) * ggml_block_bytes(type)));
  quantize_ggml(type, w.data_ptr<float>(), w.numel(), t.bytes);
  tensors_.push_back(std::move(t));
}

void GgufWriter::write(const std::string& path) const {
  auto padded = [](uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; };
  std::string head = "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, keys_.size());
  head += kv_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (auto d : t.ne) put<uint64_t>(head, static_cast<uint64_t>(d));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset = padded(offset + t.bytes.size());
  }
  head.resize(padded(head.size()), '\0');
  write_stream_atomic(path, [&](std::ostream& out) {
    const std::string zeros(kAlignment, '\0');
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    for (const auto& t : tensors_) {
      out.write(t.bytes.data(), static_cast<std::streamsize>(t.bytes.size()));
      out.write(zeros.data(), static_cast<std::streamsize>(padded(t.bytes.size()) - t.bytes.size()));
    }
  });
}

}  // namespace kd
