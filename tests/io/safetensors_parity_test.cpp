// Parity with the python `safetensors` package: files it wrote load with the same values here, the
// real checkpoint matches python's listing, and a file kd writes is accepted by python's reader.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "../test_paths.h"  // tests/ is not on the include path

namespace fs = std::filesystem;

namespace {

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return ca.numel() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

std::string golden_file(const std::string& name) {
  const std::string p = kd::test::golden("safetensors/" + name);
  if (!fs::exists(p)) throw std::runtime_error(p + " missing: run the golden_references test (make_golden.py) first");
  return p;
}

// Values from python's JSON (exact: every float32 is a double python printed with repr).
torch::Tensor from_json(const nlohmann::json& values, torch::ScalarType type) {
  if (type == torch::kInt64) return torch::tensor(values.get<std::vector<int64_t>>(), torch::kInt64);
  return torch::tensor(values.get<std::vector<double>>(), torch::kFloat64).to(type);
}

TEST(SafeTensorsParityTest, PythonWrittenDtypesLoadExactly) {
  kd::SafeTensorsFile mixed(golden_file("mixed.safetensors"));
  kd::SafeTensorsFile expected(golden_file("mixed_expected.safetensors"));
  const auto listing = kd::read_json(golden_file("mixed.json"));

  std::vector<std::string> names;
  for (const auto& e : listing["tensors"]) {
    const std::string name = e["name"];
    names.push_back(name);
    SCOPED_TRACE(name);
    const auto& info = mixed.info(name);
    EXPECT_EQ(info.dtype, e["dtype"].get<std::string>());
    EXPECT_EQ(info.shape, e["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(info.begin, e["data_offsets"][0].get<uint64_t>());
    EXPECT_EQ(info.end, e["data_offsets"][1].get<uint64_t>());
    // Python converted F16/BF16/F64 to float32 with torch; kd's default load must give the same bits.
    EXPECT_TRUE(same_bytes(mixed.load(name), expected.load(name)));
  }
  EXPECT_EQ(mixed.names(), names);
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : listing["metadata"].items()) meta[k] = v.get<std::string>();
  EXPECT_EQ(mixed.metadata(), meta);
  EXPECT_EQ(mixed.load("f16", torch::kFloat16).scalar_type(), torch::kFloat16);
  EXPECT_EQ(mixed.load("bf16").scalar_type(), torch::kFloat32);
  EXPECT_EQ(mixed.load("scalar_f16").dim(), 0);
  EXPECT_EQ(mixed.load("empty_bf16").sizes(), torch::IntArrayRef({0, 4}));
}

TEST(SafeTensorsParityTest, CheckpointMatchesPythonListing) {
  const std::string model = kd::test::model_dir() + "/model.safetensors";
  const auto listing = kd::read_json(golden_file("model.json"));
  kd::SafeTensorsFile f(model);

  const auto& entries = listing["tensors"];
  ASSERT_EQ(f.names().size(), entries.size());
  std::vector<std::string> names;
  for (const auto& e : entries) {
    const std::string name = e["name"];
    names.push_back(name);
    ASSERT_TRUE(f.contains(name)) << name;
    EXPECT_EQ(f.info(name).dtype, e["dtype"].get<std::string>()) << name;
    EXPECT_EQ(f.info(name).shape, e["shape"].get<std::vector<int64_t>>()) << name;
  }
  EXPECT_EQ(f.names(), names);
  for (const auto& [k, v] : listing["metadata"].items()) EXPECT_EQ(f.metadata().at(k), v.get<std::string>());

  // Sums catch any tensor read from the wrong place; summation order differs, hence the tolerance.
  const auto all = f.load_all();
  for (const auto& [name, sum] : listing["sums"].items()) {
    const double got = all.at(name).to(torch::kFloat64).sum().item<double>();
    EXPECT_NEAR(got, sum.get<double>(), 1e-9 * (1.0 + std::abs(sum.get<double>())) + 1e-6) << name;
  }
  for (const auto& [name, values] : listing["values"].items()) {
    const auto t = f.load(name).reshape({-1});
    EXPECT_TRUE(same_bytes(t, from_json(values, t.scalar_type()))) << name;
  }
  ASSERT_FALSE(listing["rows"].empty());
  for (const auto& r : listing["rows"]) {
    const std::string name = r["name"];
    const auto t = all.at(name)[r["row"].get<int64_t>()];
    EXPECT_TRUE(same_bytes(t, from_json(r["values"], t.scalar_type()))) << name << " row " << r["row"];
  }
}

TEST(SafeTensorsParityTest, KdWrittenFileLoadsInPython) {
  const std::string python = kd::test::python();
  ASSERT_TRUE(fs::exists(python)) << python << " not found (run scripts/setup.sh)";
  const auto dir = kd::test::temp_dir("safetensors_python_roundtrip");
  const std::string in = (dir / "kd.safetensors").string(), out = (dir / "python.safetensors").string();

  torch::manual_seed(3);
  auto f32 = torch::randn({4, 5});
  f32[0][0] = std::nanf("");
  f32[0][1] = -0.0f;
  const std::vector<std::pair<std::string, torch::Tensor>> tensors{
      {"encoder.weight", f32.t()},  // non-contiguous on purpose
      {"f16", (torch::randn({7}) * 300).to(torch::kFloat16)},
      {"bf16", torch::randn({3, 3}).to(torch::kBFloat16)},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"i64", torch::tensor({INT64_MIN, int64_t{5}, INT64_MAX})},
      {"i32", torch::tensor({-1, 2, 3}, torch::kInt32)},
      {"i8", torch::tensor({-128, 127}, torch::kInt8)},
      {"u8", torch::tensor({0, 1, 255}, torch::kUInt8)},
      {"mask", torch::tensor({true, false})},
      {"empty", torch::zeros({0, 3})},
      {"scalar", torch::tensor(4.0)},
  };
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"kd", "ünï ✓"}};
  kd::save_safetensors(in, tensors, meta);

  const std::string script = kd::test::source_dir() + "/tests/python/check_safetensors.py";
  const std::string cmd = "'" + python + "' '" + script + "' '" + in + "' '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  kd::SafeTensorsFile back(out);
  EXPECT_EQ(back.metadata(), meta);
  ASSERT_EQ(back.names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const auto type = torch::isFloatingType(t.scalar_type()) ? t.scalar_type() : torch::kFloat32;
    EXPECT_TRUE(same_bytes(back.load(name, type), t.contiguous())) << name;
  }
}

}  // namespace
