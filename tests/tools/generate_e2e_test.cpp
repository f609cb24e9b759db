// End to end through the `kd` binary: `kd generate` with the real SmolLM2 GGUF prints the same greedy
// continuation as transformers (tests/python/golden_llm.py), sampling repeats under a fixed seed, and
// bad input gives one error line and the documented exit code.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "kd/io/atomic_file.h"
#include "run_kd.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::run_kd;

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

TEST(GenerateE2ETest, GreedyOutputMatchesTransformersAndStreams) {
  const auto dir = test::temp_dir("e2e_generate_" + std::to_string(::getpid()));
  const auto prompts = read_json(test::golden("llm/model_prompts.json"))["prompts"];
  const auto& story = prompts["story"];
  const auto r = run_kd("generate --model " + test::llm_gguf() + " --prompt " + quoted(story["text"].get<std::string>()) +
                            " --max-new-tokens " + std::to_string(story["greedy"].size()),
                        dir, 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, story["greedy_text"].get<std::string>() + "\n");
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

TEST(GenerateE2ETest, SamplingRepeatsWithTheSameSeed) {
  const auto dir = test::temp_dir("e2e_generate_seed_" + std::to_string(::getpid()));
  const std::string args = "generate --model " + test::llm_gguf() +
                           " --prompt 'The weather today is' -n 12 --temperature 0.9 --top-k 40 --top-p 0.95";
  const auto a = run_kd(args + " --seed 7", dir);
  const auto b = run_kd(args + " --seed 7", dir);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 1u);
}

TEST(GenerateE2ETest, BadInputIsOneErrorLine) {
  const auto dir = test::temp_dir("e2e_generate_bad_" + std::to_string(::getpid()));
  auto r = run_kd("generate --model " + test::llm_gguf() + " --prompt hello -n 9000", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("context of 8192"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  write_file_atomic((dir / "bad.gguf").string(), "GGML not a gguf file at all");
  r = run_kd("generate --model bad.gguf --prompt hello", dir);
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("bad.gguf"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

}  // namespace
}  // namespace kd
