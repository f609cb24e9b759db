// End to end through the `kd` binary: `kd quantize` writes an int8 folder that `kd eval` and `kd bench infer`
// take like any other (bench infer saying which arithmetic ran), with the float model's predictions on most
// rows; bad input (a causal LM, an unknown type, an existing output, an int8 folder again) is one error line
// with the documented exit code, and nothing, temporary or not, is left behind.
#include <gtest/gtest.h>

#include <filesystem>

#include "kd/io/atomic_file.h"
#include "kd/models/quantize.h"
#include "../models/tiny_bert.h"
#include "../models/tiny_lm_folder.h"
#include "run_kd.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::run_kd;

// Entries of `dir` whose name holds ".tmp-" or ".old-" (staging and set-aside folders).
int leftovers(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    n += name.find(".tmp-") != std::string::npos || name.find(".old-") != std::string::npos;
  }
  return n;
}

TEST(QuantizeE2ETest, Int8FolderRunsThroughEvalAndBench) {
  const auto dir = test::temp_dir("e2e_quantize");
  auto model = test::tiny_bert(2, 32, 4, 9, {"0", "1"});
  fs::create_directories(dir / "float");
  model->save((dir / "float").string());
  test::head_tsv(test::shared_data("sst2/dev.tsv"), dir / "dev.tsv", 40);

  auto r = run_kd("quantize --model float --output int8", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("int8"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(dir / "int8" / kQuantizationFile));

  for (const char* m : {"float", "int8"}) {
    r = run_kd(std::string("eval --model ") + m + " --data dev.tsv --out " + m + ".json --teacher float", dir);
    ASSERT_EQ(r.code, 0) << m << ": " << r.err;
  }
  const auto ev = read_json((dir / "int8.json").string());
  EXPECT_EQ(ev["n"].get<int64_t>(), 40);
  // A random tiny model has near ties, which int8 may tip; most rows keep the float model's label.
  EXPECT_GE(ev["teacher"]["agreement"].get<double>(), 0.75);

  // Mixed: the feed-forward output layers stored int8, computed in float; recorded in the folder.
  r = run_kd("quantize --model float --output mixed --float-modules 'output\\.dense$'", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json((dir / "mixed" / kQuantizationFile).string())["float_modules"], "output\\.dense$");
  r = run_kd("eval --model mixed --data dev.tsv --out mixed.json", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_kd("bench infer --model mixed --data dev.tsv --repeats 1 --warmup 1 --out bench_mixed.json", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json((dir / "bench_mixed.json").string())["int8_float_modules"], "output\\.dense$");

  r = run_kd("bench infer --model int8 --data dev.tsv --repeats 3 --warmup 1 --out bench.json", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto bench = read_json((dir / "bench.json").string());
  EXPECT_EQ(bench["precision"], "int8_dynamic");
  EXPECT_TRUE(bench["int8_float_modules"].is_null());
  EXPECT_GT(bench["batch1_ms_median"].get<double>(), 0.0);
  r = run_kd("bench infer --model float --data dev.tsv --repeats 3 --warmup 1 --out bench_float.json", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json((dir / "bench_float.json").string())["precision"], "float32");
  EXPECT_EQ(leftovers(dir), 0);
}

TEST(QuantizeE2ETest, BadInputIsOneLineAndLeavesNothing) {
  const auto dir = test::temp_dir("e2e_quantize_bad");
  auto model = test::tiny_bert(1, 16, 2, 3, {"0", "1"});
  fs::create_directories(dir / "float");
  model->save((dir / "float").string());
  test::save_tiny_lm_folder(dir / "lm");
  ASSERT_EQ(run_kd("quantize --model float --output int8", dir).code, 0);
  const auto before = read_file((dir / "int8" / "model.safetensors").string());

  struct Case {
    std::string args, expect;
    int code;
    std::string must_not_exist;
  };
  const std::vector<Case> cases = {
      {"quantize --model lm --output lm-int8", "causal LM", 2, "lm-int8"},
      {"quantize --model float --output x --type int4", "--type int4", 2, "x"},
      {"quantize --model missing --output y", "missing", 3, "y"},
      {"quantize --model float --output int8", "already exists", 2, ""},
      {"quantize --model int8 --output again", "already int8", 4, "again"},
      {"quantize --model float --output z --float-modules 'layer.('", "--float-modules 'layer.('", 2, "z"},
      {"quantize --model float --output z --float-modules lstm", "matches none", 2, "z"},
  };
  for (const auto& c : cases) {
    const auto r = run_kd(c.args, dir);
    EXPECT_EQ(r.code, c.code) << c.args << ": " << r.err;
    EXPECT_EQ(test::error_lines(r.err), 1u) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
    if (!c.must_not_exist.empty()) EXPECT_FALSE(fs::exists(dir / c.must_not_exist)) << c.args;
  }
  // The refused overwrite left the existing folder as it was.
  EXPECT_EQ(read_file((dir / "int8" / "model.safetensors").string()), before);
  EXPECT_EQ(leftovers(dir), 0);
}

}  // namespace
}  // namespace kd
