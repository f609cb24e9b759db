// End to end through the `kd` binary: --precision. On a CPU without bf16 instructions `bf16` says so in one
// warning and runs float32 (the same accuracy as fp32), `auto` picks what the hardware has, and bench infer
// records the choice; an unknown value is a one-line error with exit code 2.
#include <gtest/gtest.h>

#include <filesystem>

#include "kd/io/atomic_file.h"
#include "kd/util/precision.h"
#include "../models/tiny_bert.h"
#include "run_kd.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::run_kd;

TEST(PrecisionE2ETest, TheFlagFollowsTheHardwareAndSaysWhy) {
  const auto dir = test::temp_dir("e2e_precision");
  auto model = test::tiny_bert(1, 16, 2, 4, {"0", "1"});
  fs::create_directories(dir / "m");
  model->save((dir / "m").string());
  test::head_tsv(test::shared_data("sst2/dev.tsv"), dir / "dev.tsv", 24);
  const bool has = cpu_bf16_support().any();

  auto r = run_kd("eval --model m --data dev.tsv --out fp32.json", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_kd("eval --model m --data dev.tsv --out bf16.json --precision bf16", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  if (!has) {
    EXPECT_NE(r.err.find("--precision bf16: this CPU has no bf16 instructions"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("running float32"), std::string::npos) << r.err;
    EXPECT_EQ(read_json((dir / "bf16.json").string())["accuracy"], read_json((dir / "fp32.json").string())["accuracy"]);
  }
  r = run_kd("bench infer --model m --data dev.tsv --repeats 2 --warmup 1 --precision auto --out bench.json", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto bench = read_json((dir / "bench.json").string());
  EXPECT_EQ(bench["precision"], has ? "bf16" : "float32");
  EXPECT_FALSE(bench["precision_reason"].get<std::string>().empty());

  r = run_kd("bench infer --model m --data dev.tsv --repeats 0", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--repeats: must be a number > 0, got 0"), std::string::npos) << r.err;
  r = run_kd("eval --model m --data dev.tsv --precision fp16", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(test::error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("--precision fp16"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kd
