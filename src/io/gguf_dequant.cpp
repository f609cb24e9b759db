// ggml tensor types and their decoding to float32.
//
// Block formats (ggml-common.h; 32 elements a block for the quantized types, fp16 scales):
//   Q4_0  d:f16, qs[16]         x = d * (q - 8)     18 bytes
//   Q4_1  d:f16, m:f16, qs[16]  x = d * q + m       20 bytes
//   Q8_0  d:f16, qs[32]:int8    x = d * q           34 bytes
// In the 4-bit types byte j holds element j in its low nibble and element j + 16 in its high nibble.
// The arithmetic is done in float32, as the reference decoders do, so results match them bit for bit.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>

#include "kd/io/gguf.h"

namespace kd {

namespace {

constexpr int64_t kQK = 32;

inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

void decode_q4_0(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQK; ++b, src += 18, dst += kQK) {
    const float d = half_to_float(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
      dst[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void decode_q4_1(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQK; ++b, src += 20, dst += kQK) {
    const float d = half_to_float(src);
    const float m = half_to_float(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
      dst[j + kQK / 2] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

void decode_q8_0(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQK; ++b, src += 34, dst += kQK) {
    const float d = half_to_float(src);
    const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(qs[j]) * d;
  }
}

}  // namespace

const char* ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::Q4_0: return "Q4_0";
    case GgmlType::Q4_1: return "Q4_1";
    case GgmlType::Q8_0: return "Q8_0";
    case GgmlType::BF16: return "BF16";
  }
  return "unknown";
}

bool ggml_type_known(uint32_t t) {
  switch (static_cast<GgmlType>(t)) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q8_0:
    case GgmlType::BF16:
      return true;
  }
  return false;
}

int64_t ggml_block_size(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q8_0: return kQK;
    default: return 1;
  }
}

int64_t ggml_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 4;
    case GgmlType::F16: case GgmlType::BF16: return 2;
    case GgmlType::Q4_0: return 18;
    case GgmlType::Q4_1: return 20;
    case GgmlType::Q8_0: return 34;
  }
  return 1;
}

void dequantize_ggml(GgmlType t, const uint8_t* src, int64_t n, float* dst) {
  // An empty tensor's storage may be null, and memcpy from or to null is undefined even for 0 bytes.
  if (n <= 0) return;
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t k = 0; k < n; ++k) dst[k] = half_to_float(src + 2 * k);
      return;
    case GgmlType::BF16:
      for (int64_t k = 0; k < n; ++k) {
        uint16_t h;
        std::memcpy(&h, src + 2 * k, 2);
        uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(dst + k, &bits, 4);
      }
      return;
    case GgmlType::Q4_0: decode_q4_0(src, n, dst); return;
    case GgmlType::Q4_1: decode_q4_1(src, n, dst); return;
    case GgmlType::Q8_0: decode_q8_0(src, n, dst); return;
  }
}

}  // namespace kd
