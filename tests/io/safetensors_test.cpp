// Unit tests for the safetensors reader/writer: round trips, and one test per malformed input with
// the bytes crafted by hand, checking that the error names the file and the tensor.
#include "kd/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "kd/error.h"
#include "../test_paths.h"  // tests/ is not on the include path

#include "expect_error.h"

namespace fs = std::filesystem;

namespace {

// Byte-for-byte equality, so that NaN payloads and -0.0 count.
bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return ca.numel() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

std::map<std::string, torch::Tensor> every_dtype() {
  torch::manual_seed(7);
  auto f32 = torch::randn({3, 4});
  f32.view(-1).index_put_({0}, std::numeric_limits<float>::infinity());
  f32.view(-1).index_put_({1}, std::numeric_limits<float>::quiet_NaN());
  f32.view(-1).index_put_({2}, -0.0f);
  f32.view(-1).index_put_({3}, std::numeric_limits<float>::denorm_min());
  return {
      {"f32", f32},
      {"f16", (torch::randn({5}) * 1000).to(torch::kFloat16)},
      {"bf16", (torch::randn({2, 3}) * 1e20).to(torch::kBFloat16)},
      {"f64", torch::randn({2, 2}, torch::kFloat64)},
      {"i64", torch::tensor({INT64_MIN, INT64_MAX, int64_t{0}})},
      {"i32", torch::tensor({INT32_MIN, INT32_MAX}, torch::kInt32)},
      {"i16", torch::tensor({-32768, 32767}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127, 3}, torch::kInt8)},
      {"u8", torch::tensor({0, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
  };
}

// Writes a file from a header text and raw data bytes; the header length is taken from `header`.
std::string craft(const fs::path& dir, const std::string& header, const std::string& data = "",
                  const std::string& name = "bad.safetensors") {
  const std::string path = (dir / name).string();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
  return path;
}

using kd::test::expect_error;

template <class E>
void expect_open_error(const std::string& path, const std::vector<std::string>& parts) {
  std::vector<std::string> all = parts;
  all.push_back(path);
  expect_error<E>([&] { kd::SafeTensorsFile f(path); }, all);
}

std::string entry(const std::string& name, const std::string& body) { return "\"" + name + "\":" + body; }

class SafeTensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = kd::test::temp_dir(std::string("safetensors_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  fs::path dir;
};

TEST_F(SafeTensorsTest, RoundTripsEveryDtypeExactly) {
  const auto tensors = every_dtype();
  const std::string path = (dir / "all.safetensors").string();
  kd::save_safetensors(path, {tensors.begin(), tensors.end()});
  kd::SafeTensorsFile f(path);
  ASSERT_EQ(f.names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const bool floating = torch::isFloatingType(t.scalar_type());
    EXPECT_TRUE(same_bytes(f.load(name, floating ? t.scalar_type() : torch::kFloat32), t));
    // The default load widens every floating type to float32 exactly as torch does.
    const auto def = f.load(name);
    EXPECT_TRUE(same_bytes(def, floating ? t.to(torch::kFloat32) : t));
  }
  EXPECT_EQ(f.info("bf16").dtype, "BF16");
  EXPECT_EQ(f.info("u8").dtype, "U8");
  EXPECT_EQ(f.info("bool").dtype, "BOOL");
  EXPECT_EQ(f.info("f64").shape, (std::vector<int64_t>{2, 2}));
  const auto all = f.load_all(torch::kFloat64);
  EXPECT_EQ(all.at("f16").scalar_type(), torch::kFloat64);
  EXPECT_EQ(all.at("i8").scalar_type(), torch::kInt8);
}

TEST_F(SafeTensorsTest, KeepsOrderMetadataAndAlignment) {
  const std::string path = (dir / "m.safetensors").string();
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "ünï ✓"}, {"empty", ""}};
  kd::save_safetensors(path, {{"z", torch::ones({3})}, {"a", torch::zeros({1}, torch::kInt8)}, {"m", torch::ones({2, 2})}},
                       meta);
  kd::SafeTensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"z", "a", "m"}));
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_TRUE(f.contains("a"));
  EXPECT_FALSE(f.contains("b"));
  std::ifstream in(path, std::ios::binary);
  unsigned char b[8];
  in.read(reinterpret_cast<char*>(b), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  EXPECT_EQ((8 + n) % 8, 0u) << "data section not 8-byte aligned";
}

TEST_F(SafeTensorsTest, ZeroSizeScalarAndNonContiguous) {
  const auto base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  const std::string path = (dir / "z.safetensors").string();
  kd::save_safetensors(path, {{"empty", torch::zeros({0})},
                              {"empty3", torch::zeros({2, 0, 3}, torch::kBFloat16)},
                              {"scalar", torch::tensor(2.5)},
                              {"transposed", base.t()},
                              {"sliced", base.index({torch::indexing::Slice(), 1})}});
  kd::SafeTensorsFile f(path);
  EXPECT_EQ(f.load("empty").numel(), 0);
  EXPECT_EQ(f.load("empty3").sizes(), torch::IntArrayRef({2, 0, 3}));
  EXPECT_EQ(f.load("scalar").dim(), 0);
  EXPECT_EQ(f.load("scalar").item<float>(), 2.5f);
  EXPECT_TRUE(torch::equal(f.load("transposed"), base.t()));
  EXPECT_TRUE(torch::equal(f.load("sliced"), base.index({torch::indexing::Slice(), 1})));
  EXPECT_EQ(f.info("empty").begin, f.info("empty").end);
}

TEST_F(SafeTensorsTest, ReadsHandMadeFileWithPaddedHeaderAndNoTensors) {
  const std::string data("\x01\x00\x02\x00", 4);
  auto p = craft(dir, "{" + entry("w", R"({"dtype":"I16","shape":[2],"data_offsets":[0,4]})") + "}      ", data);
  EXPECT_TRUE(torch::equal(kd::SafeTensorsFile(p).load("w"), torch::tensor({1, 2}, torch::kInt16)));
  auto q = craft(dir, "{}", "", "empty.safetensors");
  EXPECT_TRUE(kd::SafeTensorsFile(q).names().empty());
}

TEST_F(SafeTensorsTest, UnknownTensorNamesFileAndTensor) {
  const std::string path = (dir / "a.safetensors").string();
  kd::save_safetensors(path, {{"x", torch::ones({1})}});
  kd::SafeTensorsFile f(path);
  expect_error<kd::FormatError>([&] { f.load("nope"); }, {path, "nope"});
}

// ---- malformed files -----------------------------------------------------------------------

TEST_F(SafeTensorsTest, MissingFile) { expect_open_error<kd::IoError>((dir / "none.safetensors").string(), {"no such file"}); }

TEST_F(SafeTensorsTest, ShorterThanEightBytes) {
  const std::string path = (dir / "short.safetensors").string();
  std::ofstream(path, std::ios::binary) << "abc";
  expect_open_error<kd::FormatError>(path, {"too short"});
}

TEST_F(SafeTensorsTest, AbsurdHeaderLength) {
  const std::string path = (dir / "huge.safetensors").string();
  std::ofstream(path, std::ios::binary) << "PK\x03\x04garbage-not-safetensors";
  expect_open_error<kd::FormatError>(path, {"implausible"});
}

TEST_F(SafeTensorsTest, HeaderLongerThanFile) {
  const std::string path = (dir / "cut.safetensors").string();
  std::ofstream out(path, std::ios::binary);
  out.write("\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":", 13);
  out.close();
  expect_open_error<kd::IoError>(path, {"exceeds the file size", "truncated"});
}

TEST_F(SafeTensorsTest, HeaderNotJson) { expect_open_error<kd::FormatError>(craft(dir, "{\"w\": [1,"), {"not valid JSON"}); }

TEST_F(SafeTensorsTest, HeaderNotObject) { expect_open_error<kd::FormatError>(craft(dir, "[1, 2]"), {"not a JSON object"}); }

TEST_F(SafeTensorsTest, HeaderNotUtf8) {
  expect_open_error<kd::FormatError>(craft(dir, "{\"w\xff\": {}}"), {"not valid JSON"});
}

TEST_F(SafeTensorsTest, EntryNotObject) {
  expect_open_error<kd::FormatError>(craft(dir, "{" + entry("w.0", "[1]") + "}"), {"'w.0'", "not a JSON object"});
}

TEST_F(SafeTensorsTest, EntryMissingFields) {
  expect_open_error<kd::FormatError>(craft(dir, "{" + entry("d", R"({"shape":[1],"data_offsets":[0,4]})") + "}"),
                                     {"'d'", "'dtype'"});
  expect_open_error<kd::FormatError>(craft(dir, "{" + entry("s", R"({"dtype":"F32","data_offsets":[0,4]})") + "}"),
                                     {"'s'", "'shape'"});
  expect_open_error<kd::FormatError>(craft(dir, "{" + entry("o", R"({"dtype":"F32","shape":[1]})") + "}"),
                                     {"'o'", "'data_offsets'"});
}

TEST_F(SafeTensorsTest, EntryWrongTypes) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})", "'dtype'"},
      {R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", "'shape'"},
      {R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", "non-integer"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", "'data_offsets'"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", "'data_offsets'"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":["0","4"]})", "'data_offsets'"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":{"begin":0}})", "'data_offsets'"},
  };
  for (const auto& [body, what] : cases) {
    SCOPED_TRACE(body);
    expect_open_error<kd::FormatError>(craft(dir, "{" + entry("t", body) + "}", std::string(4, '\0')), {"'t'", what});
  }
}

TEST_F(SafeTensorsTest, UnknownDtype) {
  expect_open_error<kd::FormatError>(
      craft(dir, "{" + entry("c", R"({"dtype":"C64","shape":[1],"data_offsets":[0,8]})") + "}", std::string(8, '\0')),
      {"'c'", "unknown dtype 'C64'"});
}

TEST_F(SafeTensorsTest, NegativeDimension) {
  expect_open_error<kd::FormatError>(
      craft(dir, "{" + entry("n", R"({"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]})") + "}", std::string(16, '\0')),
      {"'n'", "negative dimension"});
}

TEST_F(SafeTensorsTest, ShapeDoesNotMatchOffsets) {
  expect_open_error<kd::FormatError>(
      craft(dir, "{" + entry("m", R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})") + "}", std::string(20, '\0')),
      {"'m'", "24 bytes", "span 20"});
}

TEST_F(SafeTensorsTest, ShapeProductOverflowIsNotWrappedIntoAMatch) {
  // 2^62 elements x 4 bytes wraps to 0 in 64 bits, which would "match" empty offsets.
  expect_open_error<kd::FormatError>(
      craft(dir, "{" + entry("o", R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]})") + "}"),
      {"'o'", "too large"});
  expect_open_error<kd::FormatError>(
      craft(dir, "{" + entry("o", R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]})") + "}"),
      {"'o'", "too large"});
}

TEST_F(SafeTensorsTest, BeginAfterEnd) {
  expect_open_error<kd::FormatError>(
      craft(dir, "{" + entry("b", R"({"dtype":"U8","shape":[0],"data_offsets":[4,0]})") + "}", std::string(4, '\0')),
      {"'b'", "begin 4 > end 0"});
}

TEST_F(SafeTensorsTest, DataBeyondEndOfFile) {
  expect_open_error<kd::IoError>(
      craft(dir, "{" + entry("t", R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})") + "}", std::string(12, '\0')),
      {"'t'", "truncated"});
}

TEST_F(SafeTensorsTest, OverlappingTensors) {
  const std::string h = "{" + entry("a", R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})") + "," +
                        entry("b", R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})") + "}";
  expect_open_error<kd::FormatError>(craft(dir, h, std::string(12, '\0')), {"'b'", "overlaps tensor 'a'"});
}

TEST_F(SafeTensorsTest, DuplicateTensorName) {
  const std::string body = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  expect_open_error<kd::FormatError>(craft(dir, "{" + entry("d", body) + "," + entry("d", body) + "}", "x"),
                                     {"'d'", "twice"});
}

TEST_F(SafeTensorsTest, MetadataMustBeStrings) {
  expect_open_error<kd::FormatError>(craft(dir, R"({"__metadata__":{"epoch":3}})"), {"__metadata__.epoch", "not a string"});
  expect_open_error<kd::FormatError>(craft(dir, R"({"__metadata__":["x"]})"), {"__metadata__", "not a JSON object"});
}

TEST_F(SafeTensorsTest, BoolWithInvalidByte) {
  auto p = craft(dir, "{" + entry("flags", R"({"dtype":"BOOL","shape":[2],"data_offsets":[0,2]})") + "}", "\x01\x07");
  kd::SafeTensorsFile f(p);
  expect_error<kd::FormatError>([&] { f.load("flags"); }, {p, "'flags'", "BOOL"});
}

// ---- saving ------------------------------------------------------------------------------

bool has_temp_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
  return false;
}

TEST_F(SafeTensorsTest, FailedSaveKeepsExistingFileAndLeavesNoTemp) {
  const std::string path = (dir / "good.safetensors").string();
  kd::save_safetensors(path, {{"w", torch::ones({2})}});
  expect_error<kd::FormatError>([&] { kd::save_safetensors(path, {{"a", torch::ones({1})}, {"a", torch::zeros({1})}}); },
                                {path, "'a'", "twice"});
  expect_error<kd::FormatError>(
      [&] { kd::save_safetensors(path, {{"ok", torch::ones({1})}, {"c", torch::ones({2}, torch::kComplexFloat)}}); },
      {path, "'c'", "cannot be saved"});
  expect_error<kd::FormatError>([&] { kd::save_safetensors(path, {{"__metadata__", torch::ones({1})}}); }, {path});
  kd::SafeTensorsFile f(path);
  EXPECT_EQ(f.names(), std::vector<std::string>{"w"});
  EXPECT_TRUE(torch::equal(f.load("w"), torch::ones({2})));
  EXPECT_FALSE(has_temp_files(dir));
}

TEST_F(SafeTensorsTest, FailedRenameRemovesTemp) {
  // A non-empty folder at the target path makes the final rename fail after all bytes are written.
  const fs::path target = dir / "occupied.safetensors";
  fs::create_directories(target / "child");
  expect_error<kd::IoError>([&] { kd::save_safetensors(target.string(), {{"w", torch::ones({64})}}); },
                            {target.string(), "rename"});
  EXPECT_TRUE(fs::is_directory(target / "child"));
  EXPECT_FALSE(has_temp_files(dir));
}

TEST_F(SafeTensorsTest, SaveIntoMissingFolder) {
  const std::string path = (dir / "no" / "such" / "x.safetensors").string();
  expect_error<kd::IoError>([&] { kd::save_safetensors(path, {{"w", torch::ones({1})}}); }, {path, "cannot open"});
}

}  // namespace
