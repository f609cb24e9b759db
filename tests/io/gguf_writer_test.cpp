// GgufWriterTest: Q8_0 and Q4_0 blocks decode within the error the formats allow (bounds derived below);
// a file with a metadata value of every type and tensors of every writable type reads back through kd's
// GgufFile with every key, value and tensor as written (tensors bit-exact to quantize -> dequantize);
// what GGUF cannot hold is refused before anything is written, and a failed write leaves no file.
#include "kd/io/gguf_writer.h"

#include <gtest/gtest.h>

#include <c10/util/Half.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "kd/error.h"
#include "kd/io/gguf.h"
#include "../expect_error.h"
#include "../test_paths.h"  // tests/ is not on the include path

namespace fs = std::filesystem;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // float32 unit roundoff

float stored_scale(const std::string& bytes, size_t block, size_t block_bytes) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + block * block_bytes, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

std::vector<float> decoded(kd::GgmlType t, const std::string& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  kd::dequantize_ggml(t, reinterpret_cast<const uint8_t*>(bytes.data()), n, out.data());
  return out;
}

// Values of several scales, zero blocks and blocks with repeated extremes, 32 per block.
std::vector<float> test_values() {
  torch::manual_seed(11);
  std::vector<float> v;
  for (double scale : {1e-6, 0.02, 1.0, 300.0, 1e5}) {
    const auto x = (torch::randn({128}) * scale).contiguous();
    v.insert(v.end(), x.data_ptr<float>(), x.data_ptr<float>() + 128);
  }
  v.insert(v.end(), 32, 0.0f);
  for (int j = 0; j < 32; ++j) v.push_back(j % 2 ? 3.0f : -3.0f);
  return v;
}

// Q8_0 stores q = round(x * id) with d = amax / 127 and id = 1/d in float32, and decodes x' = q * d' with
// d' = fp16(d). So |x - x'| <= |x - q d| + |q| |d - d'| + (rounding of q * d'), where
//   |x - q d| = d |x/d - q| <= d (1/2 + 2·127 u)   (x * id is x/d within two roundings, |x/d| <= 127),
//   |q| <= 127, and the float32 product q * d' rounds by at most u |q d'| <= 127 u |d'|.
// Without the fp16 scale that is the d/2 of rounding to the nearest step; the scale's own rounding
// (|d - d'| <= 2^-11 d for normal halves, more for subnormal ones) adds up to 127 |d - d'|.
TEST(GgufWriterTest, Q8_0ErrorIsHalfAStepPlusTheScalesRounding) {
  const auto x = test_values();
  std::string bytes;
  kd::quantize_ggml(kd::GgmlType::Q8_0, x.data(), static_cast<int64_t>(x.size()), bytes);
  ASSERT_EQ(bytes.size(), x.size() / 32 * 34);
  const auto back = decoded(kd::GgmlType::Q8_0, bytes, static_cast<int64_t>(x.size()));
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const double d = amax / 127.0f, ds = stored_scale(bytes, b, 34);
    const double bound = d * (0.5 + 2 * 127 * kU) + 127 * std::fabs(d - ds) + 127 * kU * std::fabs(ds);
    for (size_t j = 0; j < 32; ++j) {
      const size_t k = b * 32 + j;
      EXPECT_LE(std::fabs(static_cast<double>(x[k]) - back[k]), bound) << "block " << b << " element " << j;
    }
  }
}

// Q4_0 stores q = min(15, trunc(x * id + 8.5)) with d = m / -8 (m: the element of largest magnitude, with
// its sign) and decodes x' = (q - 8) d'. x/d lies in [-8, 8]; trunc(x/d + 8.5) rounds x/d + 8 to the
// nearest integer, off by at most 1/2, except where the clamp to 15 bites (x/d >= 7.5, possible only on
// the side opposite m), where it is off by at most 1. The computed x * id + 8.5 is within 2·8 u + 17 u of
// the exact value, |q - 8| <= 8, and the decoding product rounds by at most 8 u |d'|. So
//   |x - x'| <= |d| (1/2 + 33 u) + 8 |d - d'| + 8 u |d'|          unclamped,
//   |x - x'| <= |d| (1 + 33 u) + 8 |d - d'| + 8 u |d'|            clamped: at most one step d.
TEST(GgufWriterTest, Q4_0ErrorIsHalfAStepOrAWholeStepWhereClamped) {
  const auto x = test_values();
  std::string bytes;
  kd::quantize_ggml(kd::GgmlType::Q4_0, x.data(), static_cast<int64_t>(x.size()), bytes);
  ASSERT_EQ(bytes.size(), x.size() / 32 * 18);
  const auto back = decoded(kd::GgmlType::Q4_0, bytes, static_cast<int64_t>(x.size()));
  int clamped = 0;
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float m = x[b * 32];
    for (size_t j = 1; j < 32; ++j)
      if (std::fabs(x[b * 32 + j]) > std::fabs(m)) m = x[b * 32 + j];
    const double d = m / -8.0f, ds = stored_scale(bytes, b, 18);
    const double rounding = 8 * std::fabs(d - ds) + 8 * kU * std::fabs(ds);
    for (size_t j = 0; j < 32; ++j) {
      const size_t k = b * 32 + j;
      const bool clamps = d != 0 && x[k] / d >= 7.5;
      clamped += clamps;
      const double bound = std::fabs(d) * ((clamps ? 1.0 : 0.5) + 33 * kU) + rounding;
      EXPECT_LE(std::fabs(static_cast<double>(x[k]) - back[k]), bound) << "block " << b << " element " << j;
    }
  }
  EXPECT_GT(clamped, 0) << "the values should reach the clamp somewhere";
}

TEST(GgufWriterTest, EveryValueAndTensorTypeReadsBack) {
  using T = kd::GgufValueType;
  const auto dir = kd::test::temp_dir("gguf_writer_roundtrip");
  kd::GgufWriter w;
  const std::vector<std::pair<T, int64_t>> ints = {
      {T::UInt8, 255}, {T::Int8, -128}, {T::UInt16, 65535}, {T::Int16, -32768}, {T::UInt32, 4294967295LL},
      {T::Int32, std::numeric_limits<int32_t>::min()}, {T::UInt64, std::numeric_limits<int64_t>::max()},
      {T::Int64, std::numeric_limits<int64_t>::min()}};
  for (const auto& [t, v] : ints) w.add_int(std::string("kd.int.") + kd::gguf_value_type_name(t), t, v);
  w.add_uint64("kd.u64max", std::numeric_limits<uint64_t>::max());
  w.add_float32("kd.f32", 0.1f);
  w.add_float64("kd.f64", 1.0 / 3.0);
  w.add_bool("kd.yes", true);
  w.add_bool("kd.no", false);
  w.add_string("kd.str", "héllo ✓ 😀 <|im_start|>");
  w.add_string("kd.empty", "");
  const std::vector<std::string> strs = {"a", "Ġb c", "日本", "", "<|im_end|>"};
  w.add_strings("kd.strs", strs);
  w.add_strings("kd.no_strs", {});
  const std::vector<int64_t> i32s = {1, -2, 3, std::numeric_limits<int32_t>::max()}, u8s = {0, 7, 255};
  w.add_ints("kd.i32s", T::Int32, i32s);
  w.add_ints("kd.u8s", T::UInt8, u8s);
  w.add_floats("kd.floats", {0.5f, -1.25f, 3.0e10f});

  torch::manual_seed(5);
  struct Spec {
    const char* name;
    kd::GgmlType type;
    std::vector<int64_t> shape;
  };
  const std::vector<Spec> specs = {{"t.f32", kd::GgmlType::F32, {3, 40}},  {"t.f16", kd::GgmlType::F16, {2, 64}},
                                   {"t.q8_0", kd::GgmlType::Q8_0, {4, 64}}, {"t.q4_0", kd::GgmlType::Q4_0, {5, 96}},
                                   {"t.vec", kd::GgmlType::F32, {7}},       {"t.3d", kd::GgmlType::Q8_0, {2, 3, 32}}};
  std::map<std::string, std::pair<torch::Tensor, std::string>> expected;  // dequantized values, bytes
  for (const auto& s : specs) {
    const auto x = (torch::randn(s.shape) * 2).contiguous();
    w.add_tensor(s.name, x, s.type);
    std::string bytes;
    kd::quantize_ggml(s.type, x.data_ptr<float>(), x.numel(), bytes);
    auto y = torch::empty(s.shape);
    kd::dequantize_ggml(s.type, reinterpret_cast<const uint8_t*>(bytes.data()), x.numel(), y.data_ptr<float>());
    expected[s.name] = {y, bytes};
  }
  const std::string path = (dir / "all.gguf").string();
  w.write(path);

  const kd::GgufFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  ASSERT_EQ(f.keys().front(), "general.alignment");
  EXPECT_EQ(f.get("general.alignment").type, T::UInt32);
  EXPECT_EQ(f.keys().size(), 1 + ints.size() + 12);
  for (const auto& [t, v] : ints) {
    const auto& got = f.get(std::string("kd.int.") + kd::gguf_value_type_name(t));
    EXPECT_EQ(got.type, t);
    EXPECT_EQ(got.i, v) << kd::gguf_value_type_name(t);
  }
  EXPECT_EQ(f.get("kd.u64max").type, T::UInt64);
  EXPECT_EQ(f.get("kd.u64max").u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.get("kd.f32").type, T::Float32);
  EXPECT_EQ(f.get("kd.f32").f, static_cast<double>(0.1f));
  EXPECT_EQ(f.get("kd.f64").type, T::Float64);
  EXPECT_EQ(f.get("kd.f64").f, 1.0 / 3.0);
  EXPECT_EQ(f.get("kd.yes").type, T::Bool);
  EXPECT_TRUE(f.get_bool("kd.yes", false));
  EXPECT_FALSE(f.get_bool("kd.no", true));
  EXPECT_EQ(f.get_string("kd.str"), "héllo ✓ 😀 <|im_start|>");
  EXPECT_EQ(f.get_string("kd.empty", "x"), "");
  EXPECT_EQ(f.get_strings("kd.strs"), strs);
  EXPECT_EQ(f.get("kd.no_strs").count, 0u);
  EXPECT_EQ(f.get("kd.i32s").elem_type, T::Int32);
  EXPECT_EQ(f.get_ints("kd.i32s"), i32s);
  EXPECT_EQ(f.get("kd.u8s").elem_type, T::UInt8);
  EXPECT_EQ(f.get_ints("kd.u8s"), u8s);
  EXPECT_EQ(f.get("kd.floats").elem_type, T::Float32);
  EXPECT_EQ(f.get("kd.floats").floats, (std::vector<double>{0.5, -1.25, static_cast<double>(3.0e10f)}));

  ASSERT_EQ(f.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    const auto& info = f.tensors()[i];
    SCOPED_TRACE(s.name);
    EXPECT_EQ(info.name, s.name);
    EXPECT_EQ(info.type, s.type);
    EXPECT_EQ(info.torch_shape(), s.shape);
    EXPECT_EQ(info.offset % 32, 0u);
    const auto& [values, bytes] = expected[s.name];
    ASSERT_EQ(info.nbytes, bytes.size());
    EXPECT_EQ(std::memcmp(f.raw(s.name), bytes.data(), bytes.size()), 0);
    EXPECT_TRUE(torch::equal(f.load(s.name), values));
  }
}

TEST(GgufWriterTest, RefusesWhatGgufCannotHold) {
  using kd::test::expect_error;
  kd::GgufWriter w;
  w.add_string("kd.a", "x");
  expect_error<kd::ConfigError>([&] { w.add_bool("kd.a", true); }, {"kd.a", "twice"});
  expect_error<kd::ConfigError>([&] { w.add_int("kd.b", kd::GgufValueType::UInt8, 256); }, {"kd.b", "256", "uint8"});
  expect_error<kd::ConfigError>([&] { w.add_int("kd.c", kd::GgufValueType::UInt32, -1); }, {"kd.c", "-1"});
  expect_error<kd::ConfigError>([&] { w.add_int("kd.d", kd::GgufValueType::String, 1); }, {"kd.d", "not an integer"});
  expect_error<kd::ConfigError>([&] { w.add_ints("kd.e", kd::GgufValueType::Int8, {1, 200}); }, {"kd.e", "200"});
  // A refused value takes no key: the key can still be added.
  w.add_int("kd.b", kd::GgufValueType::UInt8, 255);
  const auto x = torch::randn({2, 48});
  expect_error<kd::ConfigError>([&] { w.add_tensor("w", x, kd::GgmlType::Q8_0); }, {"'w'", "48", "Q8_0", "32"});
  expect_error<kd::ConfigError>([&] { w.add_tensor("w", x, kd::GgmlType::Q4_0); }, {"'w'", "48", "Q4_0"});
  expect_error<kd::ConfigError>([&] { w.add_tensor("w", x, kd::GgmlType::Q4_1); }, {"'w'", "Q4_1"});
  expect_error<kd::ConfigError>([&] { w.add_tensor(std::string(64, 'n'), x, kd::GgmlType::F32); }, {"63 bytes"});
  w.add_tensor("w", x, kd::GgmlType::F16);
  expect_error<kd::ConfigError>([&] { w.add_tensor("w", x, kd::GgmlType::F32); }, {"'w'", "twice"});
  EXPECT_EQ(w.num_tensors(), 1u);
}

TEST(GgufWriterTest, AFailedWriteLeavesNoFile) {
  const auto dir = kd::test::temp_dir("gguf_writer_fail");
  kd::GgufWriter w;
  w.add_tensor("w", torch::randn({2, 32}), kd::GgmlType::Q8_0);
  const std::string path = (dir / "missing" / "m.gguf").string();
  kd::test::expect_error<kd::IoError>([&] { w.write(path); }, {path});
  EXPECT_TRUE(fs::is_empty(dir));
  // An existing file is replaced whole: the new one reads back.
  const std::string good = (dir / "m.gguf").string();
  w.write(good);
  w.write(good);
  EXPECT_EQ(kd::GgufFile(good).tensors().size(), 1u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

}  // namespace
