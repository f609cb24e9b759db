// Parity with the `gguf` Python package (llama.cpp's reader and quantizers): files it wrote read back
// with the same metadata, tensor table and dequantized values (bit for bit), and the real SmolLM2 file
// lists and decodes exactly as GGUFReader + gguf.quants.dequantize see it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "kd/io/gguf.h"
#include "kd/io/safetensors.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "../tolerance.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string golden_file(const std::string& name) {
  const std::string p = kd::test::golden("gguf/" + name);
  if (!fs::exists(p)) throw std::runtime_error(p + " missing: run the golden_references test (make_golden.py) first");
  return p;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// Compares one metadata value with python's view of it (types: outer type, then element types).
void expect_value(const kd::GgufValue& v, const json& types, const json& want, const std::string& key) {
  SCOPED_TRACE(key);
  EXPECT_EQ(upper(kd::gguf_value_type_name(v.type)), types[0].get<std::string>());
  if (!v.is_array()) {
    if (want.is_string()) EXPECT_EQ(v.s, want.get<std::string>());
    else if (want.is_boolean()) EXPECT_EQ(v.i != 0, want.get<bool>());
    else if (want.is_number_float()) EXPECT_EQ(v.f, want.get<double>());
    else if (want.is_number_unsigned()) EXPECT_EQ(v.u ? v.u : static_cast<uint64_t>(v.i), want.get<uint64_t>());
    else EXPECT_EQ(v.i, want.get<int64_t>());
    return;
  }
  ASSERT_GE(types.size(), 2u);
  EXPECT_EQ(upper(kd::gguf_value_type_name(v.elem_type)), types[1].get<std::string>());
  if (v.elem_type == kd::GgufValueType::Array) {
    // The python reader flattens nested arrays; compare the flattened elements and the inner type.
    std::vector<int64_t> flat;
    for (const auto& inner : v.items) {
      EXPECT_EQ(upper(kd::gguf_value_type_name(inner.elem_type)), types.at(2).get<std::string>());
      flat.insert(flat.end(), inner.ints.begin(), inner.ints.end());
    }
    EXPECT_EQ(flat, want.get<std::vector<int64_t>>());
    return;
  }
  ASSERT_EQ(v.count, want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    const auto& w = want[k];
    if (v.elem_type == kd::GgufValueType::String) EXPECT_EQ(v.strings[k], w.get<std::string>());
    else if (w.is_number_float()) EXPECT_EQ(v.floats[k], w.get<double>());
    else EXPECT_EQ(v.ints[k], w.get<int64_t>());
  }
}

void check_listing(const kd::GgufFile& f, const json& want, bool values) {
  EXPECT_EQ(f.version(), want["version"].get<uint32_t>());
  EXPECT_EQ(f.alignment(), want["alignment"].get<uint64_t>());
  EXPECT_EQ(f.data_offset(), want["data_offset"].get<uint64_t>());
  std::vector<std::string> keys;
  for (auto it = want["metadata"].begin(); it != want["metadata"].end(); ++it) keys.push_back(it.key());
  std::vector<std::string> ours = f.keys();
  std::sort(keys.begin(), keys.end());
  std::sort(ours.begin(), ours.end());
  EXPECT_EQ(ours, keys);
  for (auto it = want["metadata"].begin(); it != want["metadata"].end(); ++it) {
    const auto& m = it.value();
    const auto& v = f.get(it.key());
    if (m.contains("count")) {  // long arrays of the real file: length, head and tail
      EXPECT_EQ(v.count, m["count"].get<uint64_t>()) << it.key();
      json head = m["head"], tail = m["tail"];
      for (size_t k = 0; k < head.size(); ++k) {
        const size_t back = v.count - tail.size() + k;
        if (v.elem_type == kd::GgufValueType::String) {
          EXPECT_EQ(v.strings[k], head[k].get<std::string>()) << it.key();
          EXPECT_EQ(v.strings[back], tail[k].get<std::string>()) << it.key();
        } else if (v.elem_type != kd::GgufValueType::Float32) {
          EXPECT_EQ(v.ints[k], head[k].get<int64_t>()) << it.key();
          EXPECT_EQ(v.ints[back], tail[k].get<int64_t>()) << it.key();
        }
      }
    } else if (values || !m["value"].is_null()) {
      expect_value(v, m["types"], m["value"], it.key());
    }
  }
  ASSERT_EQ(f.tensors().size(), want["tensors"].size());
  for (size_t k = 0; k < f.tensors().size(); ++k) {
    const auto& t = f.tensors()[k];
    const auto& w = want["tensors"][k];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, w["name"].get<std::string>());
    EXPECT_EQ(std::string(kd::ggml_type_name(t.type)), w["type"].get<std::string>());
    EXPECT_EQ(t.torch_shape(), w["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.offset, w["offset"].get<uint64_t>());
  }
}

TEST(GgufParityTest, SyntheticFilesOfEveryTypeMatchThePythonPackage) {
  for (const std::string name : {"synthetic", "synthetic_a64"}) {
    SCOPED_TRACE(name);
    kd::GgufFile f(golden_file(name + ".gguf"));
    check_listing(f, read_json(golden_file(name + ".json")), true);
    kd::SafeTensorsFile expected(golden_file(name + "_expected.safetensors"));
    std::set<std::string> types;
    for (const auto& t : f.tensors()) {
      types.insert(kd::ggml_type_name(t.type));
      EXPECT_TRUE(same_bytes(f.load(t.name), expected.load(t.name))) << t.name;
    }
    EXPECT_EQ(types, (std::set<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"}));
  }
}

TEST(GgufParityTest, RealModelListsAndDecodesLikeThePythonPackage) {
  kd::GgufFile f(kd::test::llm_gguf());
  const json want = read_json(golden_file("model.json"));
  check_listing(f, want, false);
  // Every tensor decoded in full: float64 sums agree to rounding of the summation order, which differs
  // between torch and numpy and between CPUs. Bound (tests/tolerance.h): one reduction of n terms in
  // float64 on each side, the terms' size being Σ|x| at most (the partial sums never exceed it).
  double worst = 0;
  for (const auto& w : want["tensors"]) {
    const std::string name = w["name"];
    const auto x = f.load(name).to(torch::kFloat64);
    const double sum = x.sum().item<double>();
    const double ref = w["sum"].get<double>();
    const double tol = kd::test::rounding_tolerance(kd::test::kEps64, x.numel(), 1, x.abs().sum().item<double>());
    EXPECT_NEAR(sum, ref, tol) << name;
    worst = std::max(worst, std::abs(sum - ref) / tol);
  }
  std::printf("[ parity ] GGUF tensor sums: largest diff / tolerance %.3g\n", worst);
  kd::SafeTensorsFile expected(golden_file("model_expected.safetensors"));
  using torch::indexing::Slice;
  const auto emb = f.load("token_embd.weight");
  EXPECT_TRUE(same_bytes(emb.index({Slice(0, 16)}), expected.load("token_embd.weight[:16]")));
  EXPECT_TRUE(same_bytes(emb.index({Slice(-16, torch::indexing::None)}), expected.load("token_embd.weight[-16:]")));
  EXPECT_TRUE(same_bytes(emb.index({Slice(1000, 1016)}), expected.load("token_embd.weight[1000:1016]")));
  for (const std::string name : {"blk.0.attn_k.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                                 "blk.0.attn_norm.weight", "output_norm.weight"})
    EXPECT_TRUE(same_bytes(f.load(name), expected.load(name))) << name;
}

}  // namespace
