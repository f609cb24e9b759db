// GgufWriterParityTest: kd's Q8_0 and Q4_0 encoders write the bytes the `gguf` Python package
// (llama.cpp's quantizers) writes for the same values (tests/python/golden_gguf_writer.py), and GGUFReader
// reads every key and tensor of kd-written files as kd reads them (tests/python/check_gguf_file.py): a
// file with a value of every type and tensors of every writable type, and an exported tiny causal LM.
#include "kd/io/gguf_writer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "kd/io/atomic_file.h"
#include "kd/io/gguf.h"
#include "kd/io/safetensors.h"
#include "kd/models/causal_lm_gguf.h"
#include "../models/tiny_lm_folder.h"
#include "../test_paths.h"  // tests/ is not on the include path

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

TEST(GgufWriterParityTest, QuantizedBytesEqualTheGgufPackages) {
  const std::string golden = kd::test::golden("gguf_writer/quants.safetensors");
  ASSERT_TRUE(fs::exists(golden)) << golden << " missing: run the golden_references test (make_golden.py) first";
  const kd::SafeTensorsFile f(golden);
  int cases = 0;
  for (const auto& name : f.names()) {
    if (name.find('.') != std::string::npos) continue;
    ++cases;
    const auto x = f.load(name).contiguous();
    for (const auto& [suffix, type] : {std::pair{"q8_0", kd::GgmlType::Q8_0}, std::pair{"q4_0", kd::GgmlType::Q4_0}}) {
      const auto want = f.load(name + "." + suffix).contiguous();
      ASSERT_EQ(want.scalar_type(), torch::kUInt8);
      std::string got;
      kd::quantize_ggml(type, x.data_ptr<float>(), x.numel(), got);
      ASSERT_EQ(got.size(), static_cast<size_t>(want.numel())) << name << "." << suffix;
      const auto* w = want.data_ptr<uint8_t>();
      for (size_t k = 0; k < got.size(); ++k)
        ASSERT_EQ(static_cast<uint8_t>(got[k]), w[k]) << name << "." << suffix << " byte " << k << " (block "
                                                      << k / (type == kd::GgmlType::Q8_0 ? 34 : 18) << ")";
    }
  }
  EXPECT_GE(cases, 8);
}

// kd's reading of a file, as check_gguf_file.py compares it with GGUFReader's.
json describe(const kd::GgufFile& f) {
  using T = kd::GgufValueType;
  auto scalar = [](const kd::GgufValue& v) -> json {
    switch (v.type) {
      case T::Float32: case T::Float64: return v.f;
      case T::Bool: return v.i != 0;
      case T::String: return v.s;
      case T::UInt64: return v.u;
      default: return v.i;
    }
  };
  json meta = json::object();
  for (const auto& key : f.keys()) {
    const auto& v = f.get(key);
    json types = {upper(kd::gguf_value_type_name(v.type))}, value;
    if (v.is_array()) {
      types.push_back(upper(kd::gguf_value_type_name(v.elem_type)));
      value = v.elem_type == T::String ? json(v.strings)
              : v.elem_type == T::Float32 || v.elem_type == T::Float64 ? json(v.floats)
                                                                        : json(v.ints);
    } else {
      value = scalar(v);
    }
    meta[key] = {{"types", types}, {"value", value}};
  }
  json tensors = json::array();
  for (const auto& t : f.tensors())
    tensors.push_back({{"name", t.name}, {"type", kd::ggml_type_name(t.type)}, {"shape", t.torch_shape()}, {"offset", t.offset}});
  return {{"alignment", f.alignment()}, {"keys", f.keys()}, {"metadata", meta}, {"tensors", tensors}};
}

void expect_python_reads(const std::string& path) {
  const std::string python = kd::test::python();
  ASSERT_TRUE(fs::exists(python)) << python << " not found (run scripts/setup.sh)";
  const kd::GgufFile f(path);
  const std::string expect_json = path + ".expect.json", expect_tensors = path + ".expect.safetensors";
  kd::write_file_atomic(expect_json, describe(f).dump());
  std::vector<std::pair<std::string, torch::Tensor>> values;
  for (const auto& t : f.tensors()) values.emplace_back(t.name, f.load(t.name));
  kd::save_safetensors(expect_tensors, values);
  const std::string cmd = "'" + python + "' '" + kd::test::source_dir() + "/tests/python/check_gguf_file.py' '" + path +
                          "' '" + expect_json + "' '" + expect_tensors + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(GgufWriterParityTest, PythonReadsEveryKeyAndTensor) {
  using T = kd::GgufValueType;
  const auto dir = kd::test::temp_dir("gguf_writer_python");
  kd::GgufWriter w;
  for (const auto& [t, v] : std::vector<std::pair<T, int64_t>>{{T::UInt8, 200}, {T::Int8, -5}, {T::UInt16, 60000},
                                                                 {T::Int16, -30000}, {T::UInt32, 4000000000LL},
                                                                 {T::Int32, -2000000000}, {T::Int64, -(1LL << 62)}})
    w.add_int(std::string("kd.") + kd::gguf_value_type_name(t), t, v);
  w.add_uint64("kd.uint64", (1ULL << 63) + 5);
  w.add_float32("kd.float32", 0.1f);
  w.add_float64("kd.float64", 1.0 / 3.0);
  w.add_bool("kd.bool", true);
  w.add_string("kd.string", "héllo ✓ 😀");
  w.add_strings("kd.strings", {"a", "Ġb c", "日本", ""});
  w.add_ints("kd.int32s", T::Int32, {1, -2, 2147483647});
  w.add_floats("kd.float32s", {0.5f, -1.25f});
  torch::manual_seed(2);
  w.add_tensor("f32", torch::randn({3, 40}), kd::GgmlType::F32);
  w.add_tensor("f16", torch::randn({2, 64}), kd::GgmlType::F16);
  w.add_tensor("q8_0", torch::randn({4, 64}), kd::GgmlType::Q8_0);
  w.add_tensor("q4_0", torch::randn({5, 96}), kd::GgmlType::Q4_0);
  w.add_tensor("vec", torch::randn({7}), kd::GgmlType::F32);
  w.add_tensor("three_d", torch::randn({2, 3, 32}), kd::GgmlType::Q8_0);
  const std::string synthetic = (dir / "synthetic.gguf").string();
  w.write(synthetic);
  expect_python_reads(synthetic);

  const auto folder = kd::test::save_tiny_lm_folder(dir / "tiny");
  for (const std::string type : {"f16", "q4_0"}) {
    const std::string out = (dir / ("tiny-" + type + ".gguf")).string();
    kd::export_causal_lm_gguf(folder, out, kd::parse_gguf_export_type(type));
    expect_python_reads(out);
  }
}

}  // namespace
