// Unit tests for the GGUF reader on files assembled byte by byte here: a valid file decodes, and each
// malformed one (wrong magic, unsupported type, offset past the end, truncation, absurd counts) is
// refused with the right error type and a message naming the file and the tensor or key.
#include "kd/io/gguf.h"

#include <gtest/gtest.h>

#include <c10/util/Half.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "kd/error.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "gguf_bytes.h"

namespace fs = std::filesystem;

namespace {

using kd::test::GgufBytes;

std::string write(const fs::path& dir, const std::string& bytes, const std::string& name = "m.gguf") {
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

template <class E>
void expect_open_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    kd::GgufFile f(path);
    FAIL() << "no exception thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    FAIL() << "wrong exception type: " << e.what();
  }
}

// A file with an F32 vector [4] at offset 0 and a Q8_0 row of 32 at offset 32.
GgufBytes small_file(std::vector<float>& f32, float& q_scale, std::vector<int8_t>& q) {
  GgufBytes g;
  g.add_string("general.architecture", "llama");
  g.add_u32("llama.block_count", 2);
  g.tensors = {{"vec", 0, {4}, 0}, {"q", 8, {32}, 32}};
  f32 = {1.5f, -2.0f, 0.0f, 3.25f};
  g.data.append(reinterpret_cast<const char*>(f32.data()), 16);
  g.data.resize(32, '\0');
  const c10::Half d(0.5f);
  q_scale = static_cast<float>(d);
  GgufBytes::put<uint16_t>(g.data, d.x);
  for (int j = 0; j < 32; ++j) q.push_back(static_cast<int8_t>(j * 7 - 100));
  g.data.append(reinterpret_cast<const char*>(q.data()), 32);
  return g;
}

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = kd::test::temp_dir(std::string("gguf_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    good = small_file(f32, q_scale, q);
  }
  fs::path dir;
  GgufBytes good;
  std::vector<float> f32;
  float q_scale = 0;
  std::vector<int8_t> q;
};

TEST_F(GgufTest, ReadsMetadataAndDecodesTensors) {
  kd::GgufFile f(write(dir, good.bytes()));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"general.architecture", "llama.block_count"}));
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_EQ(f.get_int("llama.absent", 7), 7);
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto vec = f.load("vec");
  EXPECT_EQ(vec.sizes(), torch::IntArrayRef({4}));
  EXPECT_TRUE(torch::equal(vec, torch::tensor(f32)));
  const auto qt = f.load("q");
  for (int j = 0; j < 32; ++j) EXPECT_EQ(qt[j].item<float>(), static_cast<float>(q[j]) * q_scale);
  EXPECT_EQ(f.data_offset() % 32, 0u);
}

TEST_F(GgufTest, WrongMagicIsAFormatError) {
  good.magic = "GGML";
  expect_open_error<kd::FormatError>(write(dir, good.bytes()), {"magic", "GGML"});
}

TEST_F(GgufTest, UnsupportedVersionAndBigEndianAreNamed) {
  good.version = 1;
  expect_open_error<kd::FormatError>(write(dir, good.bytes()), {"version 1"});
  good.version = 0x03000000u;
  expect_open_error<kd::FormatError>(write(dir, good.bytes(), "be.gguf"), {"big-endian"});
}

TEST_F(GgufTest, UnsupportedTensorTypeNamesTheTensor) {
  good.tensors[1].type = 12;  // Q4_K: a real ggml type that kd does not decode
  expect_open_error<kd::FormatError>(write(dir, good.bytes()), {"tensor 'q'", "unsupported tensor type 12"});
}

TEST_F(GgufTest, OffsetPastEndOfFileIsAFormatError) {
  good.tensors[1].offset = 1 << 20;
  expect_open_error<kd::FormatError>(write(dir, good.bytes()), {"tensor 'q'", "past the end of the file"});
}

TEST_F(GgufTest, UnalignedOffsetIsAFormatError) {
  good.tensors[1].offset = 20;
  expect_open_error<kd::FormatError>(write(dir, good.bytes()), {"tensor 'q'", "alignment"});
}

TEST_F(GgufTest, TruncatedFilesAreIoErrors) {
  const std::string all = good.bytes();
  // Cut inside the tensor data: the header is intact but the last tensor's bytes are missing.
  expect_open_error<kd::IoError>(write(dir, all.substr(0, all.size() - 5), "data.gguf"), {"tensor 'q'", "truncated"});
  // Cut inside the metadata and inside the tensor table.
  expect_open_error<kd::IoError>(write(dir, all.substr(0, 40), "kv.gguf"), {"truncated"});
  expect_open_error<kd::IoError>(write(dir, all.substr(0, 120), "table.gguf"), {"truncated"});
  expect_open_error<kd::IoError>(write(dir, "", "empty.gguf"), {"truncated", "magic"});
}

TEST_F(GgufTest, MissingFileIsAnIoError) {
  expect_open_error<kd::IoError>((dir / "absent.gguf").string(), {"cannot open"});
}

TEST_F(GgufTest, AbsurdCountsAreRefusedBeforeAllocating) {
  // Counts larger than the rest of the file can hold read as a truncated (or corrupt) file.
  GgufBytes g = good;
  g.kv_count = uint64_t{1} << 60;
  expect_open_error<kd::IoError>(write(dir, g.bytes(), "kv.gguf"), {"metadata of 1152921504606846976 entries"});
  // An array that claims more elements than there are bytes left.
  GgufBytes a = good;
  GgufBytes::put_str(a.kv, "tokenizer.ggml.tokens");
  GgufBytes::put<uint32_t>(a.kv, 9);
  GgufBytes::put<uint32_t>(a.kv, 8);
  GgufBytes::put<uint64_t>(a.kv, uint64_t{1} << 40);
  ++a.kv_count;
  expect_open_error<kd::IoError>(write(dir, a.bytes(), "arr.gguf"), {"key 'tokenizer.ggml.tokens' array", "truncated"});
  // A tensor whose dimensions overflow.
  GgufBytes t = good;
  t.tensors[0].ne = {uint64_t{1} << 40, uint64_t{1} << 40};
  expect_open_error<kd::FormatError>(write(dir, t.bytes(), "dims.gguf"), {"tensor 'vec'", "too large"});
}

TEST_F(GgufTest, BadRowLengthAndDuplicatesAreFormatErrors) {
  GgufBytes g = good;
  g.tensors[1].ne = {16, 2};  // Q8_0 rows must hold whole blocks of 32
  expect_open_error<kd::FormatError>(write(dir, g.bytes(), "row.gguf"), {"tensor 'q'", "block size"});
  GgufBytes d = good;
  d.tensors[1].name = "vec";
  expect_open_error<kd::FormatError>(write(dir, d.bytes(), "dup.gguf"), {"tensor 'vec'", "duplicate"});
}

TEST_F(GgufTest, MissingOrMistypedKeysNameTheKey) {
  kd::GgufFile f(write(dir, good.bytes()));
  try {
    f.get_int("llama.context_length");
    FAIL();
  } catch (const kd::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'llama.context_length'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get_int("general.architecture"), kd::FormatError);
  EXPECT_THROW(f.get_strings("llama.block_count"), kd::FormatError);
  EXPECT_THROW(f.load("nope"), kd::FormatError);
}

}  // namespace
