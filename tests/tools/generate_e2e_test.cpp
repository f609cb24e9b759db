// End to end through the `kd` binary: `kd generate` with the real SmolLM2 GGUF prints the same greedy
// continuation as transformers (tests/python/golden_llm.py), as a plain prompt and as a chat turn;
// sampling repeats under a fixed seed; --prompts writes one JSON line per prompt; bad input gives one
// error line and the documented exit code.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>


#include <algorithm>
#include <filesystem>
#include <sstream>

#include "kd/io/atomic_file.h"
#include "kd/text/bpe_tokenizer.h"
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

nlohmann::json golden_prompts() { return read_json(test::golden("llm/model_prompts.json"))["prompts"]; }

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

TEST(GenerateE2ETest, GreedyOutputMatchesTransformersAndStreams) {
  const auto dir = test::temp_dir("e2e_generate");
  const auto story = golden_prompts()["story"];
  const auto r = run_kd("generate --model " + test::llm_gguf() + " --prompt " + quoted(story["text"].get<std::string>()) +
                            " --max-new-tokens " + std::to_string(story["greedy"].size()),
                        dir, 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, story["greedy_text"].get<std::string>() + "\n");
  EXPECT_NE(r.err.find("prefill"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  std::cout << r.err;
}

TEST(GenerateE2ETest, ChatWrapsThePromptInTheTemplateAndStopsAtEos) {
  const auto dir = test::temp_dir("e2e_generate_chat");
  const auto chat = golden_prompts()["chat"];
  // The golden chat prompt is the model's template applied to this one user message.
  const auto r = run_kd("generate --chat --model " + test::llm_gguf() + " --prompt 'What is the capital of France?' -n " +
                            std::to_string(chat["greedy"].size()),
                        dir, 2);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string full = chat["greedy_text"];
  const auto eos = full.find("<|im_end|>");  // transformers' golden run does not stop there; kd does
  EXPECT_EQ(r.out, full.substr(0, eos) + "\n");
}

TEST(GenerateE2ETest, SamplingRepeatsWithTheSameSeed) {
  const auto dir = test::temp_dir("e2e_generate_seed");
  const std::string args = "generate --model " + test::llm_gguf() +
                           " --prompt 'The weather today is' -n 12 --temperature 0.9 --top-k 40 --top-p 0.95 --ignore-eos";
  const auto a = run_kd(args + " --seed 7", dir);
  const auto b = run_kd(args + " --seed 7", dir);
  const auto c = run_kd(args + " --seed 8", dir);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  EXPECT_GT(a.out.size(), 1u);
}

TEST(GenerateE2ETest, PromptsFileWritesOneJsonLineEach) {
  const auto dir = test::temp_dir("e2e_generate_file");
  const auto story = golden_prompts()["story"];
  const std::string text = story["text"];
  write_file_atomic((dir / "prompts.txt").string(), text + "\n\nThe weather today is\n");
  auto r = run_kd("generate --model " + test::llm_gguf() + " --prompts prompts.txt --out out.jsonl -n 10", dir, 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  std::istringstream in(read_file((dir / "out.jsonl").string()));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["prompt"], text);
  const auto greedy = story["greedy"].get<std::vector<int64_t>>();
  EXPECT_EQ(rows[0]["ids"].get<std::vector<int64_t>>(), std::vector<int64_t>(greedy.begin(), greedy.begin() + 10));
  const auto tok = BpeTokenizer::from_gguf(test::llm_gguf());
  EXPECT_EQ(rows[0]["continuation"], tok.decode(rows[0]["ids"].get<std::vector<int64_t>>()));
  EXPECT_EQ(rows[0]["finish"], "length");
  EXPECT_EQ(rows[1]["prompt"], "The weather today is");
  // JSON lines input gives the same.
  write_file_atomic((dir / "prompts.jsonl").string(), nlohmann::json({{"prompt", text}}).dump() + "\n");
  r = run_kd("generate --model " + test::llm_gguf() + " --prompts prompts.jsonl --out again.jsonl -n 10", dir, 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(read_file((dir / "again.jsonl").string())), rows[0]);
}

TEST(GenerateE2ETest, BadInputIsOneErrorLine) {
  const auto dir = test::temp_dir("e2e_generate_bad");
  const std::string model = " --model " + test::llm_gguf();
  // More new tokens than the context holds: a bad flag (ConfigError, 2).
  auto r = run_kd("generate" + model + " --prompt hello -n 9000", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("context of 8192"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  // A prompt longer than the context (DataError, 5), named by file and line.
  std::string long_prompt;
  for (int i = 0; i < 9000; ++i) long_prompt += " word";
  write_file_atomic((dir / "prompts.txt").string(), "short one\n" + long_prompt + "\n");
  r = run_kd("generate" + model + " --prompts prompts.txt --out out.jsonl", dir);
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_NE(r.err.find("prompts.txt:2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("context of 8192"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out.jsonl"));
  // Not a GGUF file (FormatError, 4).
  write_file_atomic((dir / "bad.gguf").string(), "GGML not a gguf file at all");
  r = run_kd("generate --model bad.gguf --prompt hello", dir);
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("bad.gguf"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_TRUE(r.out.empty());
  // Flags: --prompts without --out, a negative top-p, both --prompt and --prompts, neither.
  for (const std::string flags : {" --prompts prompts.txt", " --prompt x --top-p -1", " --prompt x --prompts prompts.txt --out o.jsonl", ""}) {
    r = run_kd("generate" + model + flags, dir);
    EXPECT_NE(r.code, 0) << flags;
    EXPECT_EQ(lines(r.err), 1u) << flags << ": " << r.err;
  }
  // NaN and infinite sampling settings are refused before the model loads, naming the flag (2).
  for (const std::string flag : {"--temperature nan", "--temperature inf", "--top-p nan", "--temperature -1"}) {
    r = run_kd("generate" + model + " --prompt x " + flag, dir);
    EXPECT_EQ(r.code, 2) << flag << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1u) << flag << ": " << r.err;
    EXPECT_NE(r.err.find(flag.substr(0, flag.find(' '))), std::string::npos) << flag << ": " << r.err;
  }
  // Counts out of range say what the value must be (not CLI11's "not in range 0 to 1.79e308").
  for (const auto& [flag, want] : std::vector<std::pair<std::string, std::string>>{
           {"--top-k -3", "--top-k: must be a number >= 0, got -3"}, {"--top-k nan", "must be a number >= 0, got nan"}}) {
    r = run_kd("generate" + model + " --prompt x " + flag, dir);
    EXPECT_EQ(r.code, 2) << flag << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1u) << flag << ": " << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << flag << ": " << r.err;
  }
  // A prompt that is not UTF-8 (DataError, 5).
  r = run_kd("generate" + model + " --prompt \"$(printf '\\377\\376')\"", dir);
  EXPECT_EQ(r.code, 5) << r.err;
}

}  // namespace
}  // namespace kd
