// FuzzDriverTest: runs each fuzz target (fuzz/*_fuzz.cpp) over a fixed, seeded set of mutations of
// valid inputs: bit flips, truncations, length and count fields overwritten with extreme values,
// random byte runs, and (for tokenizer.json) values of the wrong JSON type. Any exception that is not
// a kd::Error, and any crash, fails the test. The seed inputs are written to
// <build>/test_tmp/fuzz_seeds/<target>/ as a starting corpus for the libFuzzer binaries.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "fuzz_targets.h"
#include "kd/io/gguf.h"
#include "kd/models/llama.h"
#include "kd/text/bpe_tokenizer.h"
#include "../io/gguf_bytes.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "../text/tiny_bpe.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Target = int (*)(const uint8_t*, size_t);

kd::BpeTokenizer seed_tokenizer() {
  using T = kd::BpeTokenType;
  return kd::test::tiny_bpe({"Ġ t", "h e", "Ġt he", "i n", "1 2"}, {"<|endoftext|>", "<|im_start|>", "<|im_end|>"},
                            {T::Control, T::Control, T::Control}, kd::BpePreTokenizer::SmolLM);
}

void put_ints(kd::test::GgufBytes& g, const std::string& key, const std::vector<int32_t>& v) {
  using G = kd::test::GgufBytes;
  G::put_str(g.kv, key);
  G::put<uint32_t>(g.kv, 9);  // array
  G::put<uint32_t>(g.kv, 5);  // of int32
  G::put<uint64_t>(g.kv, v.size());
  for (auto x : v) G::put<int32_t>(g.kv, x);
  ++g.kv_count;
}

// A complete one-layer LLaMA GGUF with its tokenizer, tensors in every supported type. The tensor
// bytes are random: only the structure matters here.
std::string seed_gguf(size_t& header_size) {
  const auto tok = seed_tokenizer();
  const auto V = static_cast<uint64_t>(tok.vocab_size());
  kd::test::GgufBytes g;
  g.add_string("general.architecture", "llama");
  g.add_u32("llama.block_count", 1);
  g.add_u32("llama.context_length", 16);
  g.add_u32("llama.embedding_length", 32);
  g.add_u32("llama.feed_forward_length", 64);
  g.add_u32("llama.attention.head_count", 4);
  g.add_u32("llama.attention.head_count_kv", 2);
  g.add_f32("llama.rope.freq_base", 10000.0f);
  g.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.add_string("tokenizer.ggml.model", "gpt2");
  g.add_string("tokenizer.ggml.pre", "smollm");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < tok.vocab_size(); ++i) {
    tokens.push_back(tok.token(i));
    types.push_back(static_cast<int32_t>(tok.token_type(i)));
  }
  g.add_strings("tokenizer.ggml.tokens", tokens);
  put_ints(g, "tokenizer.ggml.token_type", types);
  g.add_strings("tokenizer.ggml.merges", tok.merges());
  g.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*tok.token_id("<|im_start|>")));
  g.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*tok.token_id("<|im_end|>")));
  std::mt19937 rng(11);
  // (name, ggml type, ne, bytes)
  auto add = [&](const std::string& name, uint32_t type, std::vector<uint64_t> ne, uint64_t nbytes) {
    g.data.resize((g.data.size() + 31) / 32 * 32, '\0');
    g.tensors.push_back({name, type, ne, g.data.size()});
    for (uint64_t i = 0; i < nbytes; ++i) g.data += static_cast<char>(rng() % 7 == 0 ? 0x7c : rng() % 64);
  };
  add("token_embd.weight", 8, {32, V}, V * 34);  // Q8_0
  add("output_norm.weight", 0, {32}, 32 * 4);    // F32
  add("blk.0.attn_norm.weight", 0, {32}, 32 * 4);
  add("blk.0.attn_q.weight", 2, {32, 32}, 32 * 18);  // Q4_0
  add("blk.0.attn_k.weight", 3, {32, 16}, 16 * 20);  // Q4_1
  add("blk.0.attn_v.weight", 1, {32, 16}, 32 * 16 * 2);    // F16
  add("blk.0.attn_output.weight", 30, {32, 32}, 32 * 32 * 2);  // BF16
  add("blk.0.ffn_norm.weight", 0, {32}, 32 * 4);
  add("blk.0.ffn_gate.weight", 0, {32, 64}, 32 * 64 * 4);
  add("blk.0.ffn_up.weight", 0, {32, 64}, 32 * 64 * 4);
  add("blk.0.ffn_down.weight", 0, {64, 32}, 64 * 32 * 4);
  const std::string all = g.bytes();
  header_size = all.size() - g.data.size();
  return all;
}

// Byte-level mutations of `seed`, most of them inside the first `hot` bytes (the header).
std::vector<std::string> mutate(const std::string& seed, size_t hot, size_t count, uint64_t rng_seed) {
  std::mt19937_64 rng(rng_seed);
  const uint64_t extremes[] = {0, 1, 2, 3, 7, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffffu, 0xffffffffu, 0x100000000ull,
                               uint64_t{1} << 62, uint64_t{1} << 63, ~uint64_t{0}, seed.size(), seed.size() - 1};
  std::vector<std::string> out;
  for (size_t k = 0; k < count; ++k) {
    std::string s = seed;
    const size_t span = (rng() % 10 < 7 && hot > 0) ? std::min(hot, s.size()) : s.size();
    auto pos = [&] { return static_cast<size_t>(rng() % span); };
    switch (rng() % 5) {
      case 0:  // flip a few bits
        for (int b = 0, n = 1 + static_cast<int>(rng() % 4); b < n; ++b) s[pos()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // cut short
        s.resize(pos());
        break;
      case 2: {  // a 64-bit length or count field
        const uint64_t v = rng() % 4 == 0 ? rng() : extremes[rng() % std::size(extremes)];
        const size_t p = pos();
        if (p + 8 <= s.size()) std::memcpy(&s[p], &v, 8);
        break;
      }
      case 3: {  // a 32-bit type, dimension count or version
        const auto v = static_cast<uint32_t>(rng() % 3 == 0 ? rng() : extremes[rng() % std::size(extremes)]);
        const size_t p = pos();
        if (p + 4 <= s.size()) std::memcpy(&s[p], &v, 4);
        break;
      }
      default: {  // a run of random bytes
        const size_t p = pos(), n = std::min<size_t>(1 + rng() % 16, s.size() - p);
        for (size_t i = 0; i < n; ++i) s[p + i] = static_cast<char>(rng());
        break;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// The tokenizer.json with one value somewhere replaced by a value of another JSON type, or removed.
std::vector<std::string> mutate_json(const json& seed, size_t count, uint64_t rng_seed) {
  std::mt19937_64 rng(rng_seed);
  const json replacements[] = {nullptr, 0, -1, 1.5, "x", "", json::array(), json::array({1, 2}), json::object(),
                               json{{"type", "ByteLevel"}}, true, 1e18};
  std::vector<std::string> out;
  for (size_t k = 0; k < count; ++k) {
    json j = seed;
    json* node = &j;
    // Walk down a random path, preferring small containers (the vocabulary is large).
    for (int depth = 0; depth < 4 && (node->is_object() || node->is_array()) && !node->empty(); ++depth) {
      auto it = node->begin();
      std::advance(it, static_cast<long>(rng() % std::min<size_t>(node->size(), 40)));
      if (rng() % 3 == 0) break;
      node = &*it;
    }
    if (node->is_object() && !node->empty() && rng() % 2) node->erase(node->begin());
    else *node = replacements[rng() % std::size(replacements)];
    out.push_back(j.dump());
  }
  return out;
}

void write_seed(const std::string& target, const std::string& name, const std::string& bytes) {
  const auto dir = fs::path(KD_BINARY_DIR) / "test_tmp" / "fuzz_seeds" / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

// Runs the target on every input; anything but a normal return is a failure, reported with the input
// saved for replay.
void run_all(Target target, const std::string& name, const std::vector<std::string>& inputs) {
  const auto start = std::chrono::steady_clock::now();
  size_t failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    try {
      target(reinterpret_cast<const uint8_t*>(inputs[i].data()), inputs[i].size());
    } catch (const std::exception& e) {
      const auto file = kd::test::temp_dir("fuzz_failures_" + name + "_" + std::to_string(i)) / "input";
      std::ofstream(file, std::ios::binary) << inputs[i];
      if (++failures <= 5) ADD_FAILURE() << name << " input " << i << " (saved as " << file << "): " << e.what();
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ fuzz ] " << name << ": " << inputs.size() << " inputs in " << s << " s, " << failures
            << " failures\n";
}

TEST(FuzzDriverTest, GgufReaderSurvivesMutatedFiles) {
  size_t header = 0;
  const std::string seed = seed_gguf(header);
  write_seed("gguf", "tiny_llama.gguf", seed);
  {  // the seed itself loads all the way through, so that mutations reach every stage
    const auto f = kd::GgufFile::from_bytes(seed, "seed.gguf");
    EXPECT_EQ(kd::BpeTokenizer::from_gguf(*f).vocab_size(), seed_tokenizer().vocab_size());
    EXPECT_EQ(kd::load_llama_gguf(*f)->options().num_layers, 1);
  }
  auto inputs = mutate(seed, header, 1500, 1);
  inputs.push_back(seed);
  inputs.push_back("");
  // Every truncation of the header region at a coarse stride.
  for (size_t n = 0; n < header; n += 37) inputs.push_back(seed.substr(0, n));
  run_all(kd::fuzz::gguf_input, "gguf", inputs);
}

TEST(FuzzDriverTest, BpeTokenizerSurvivesMutatedText) {
  const std::vector<std::string> seeds = {
      "the thin 12 tin\n\nx", "Café ½ 3.14 😀 日本語 <|s|><|u x", "Ġt he\nh e\ni n\n1 2", std::string("a\0b\xff\xfe", 5),
      "   \t\r\n  ", "don't 's 're 123456 ４５"};
  std::vector<std::string> inputs;
  for (size_t i = 0; i < seeds.size(); ++i) {
    write_seed("bpe_tokenizer", "seed" + std::to_string(i), seeds[i]);
    inputs.push_back(seeds[i]);
    for (auto& m : mutate(seeds[i], 0, 150, 100 + i)) inputs.push_back(std::move(m));
  }
  std::mt19937_64 rng(5);
  for (int i = 0; i < 200; ++i) {  // random bytes
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    inputs.push_back(s);
  }
  run_all(kd::fuzz::bpe_tokenizer_input, "bpe_tokenizer", inputs);
}

TEST(FuzzDriverTest, TokenizerJsonReaderSurvivesMutatedFiles) {
  const std::string seed = seed_tokenizer().to_tokenizer_json();
  write_seed("tokenizer_json", "tiny_tokenizer.json", seed);
  EXPECT_EQ(kd::BpeTokenizer::from_tokenizer_json_text(seed, "seed.json").merges(), seed_tokenizer().merges());
  auto inputs = mutate_json(json::parse(seed), 400, 2);
  for (auto& m : mutate(seed, 600, 100, 3)) inputs.push_back(std::move(m));
  inputs.push_back(seed);
  for (const char* s : {"", "null", "[]", "{}", "{\"model\": []}", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 5}}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 0}]}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
                        "{\"type\": \"Sequence\", \"pretokenizers\": [1, 2]}}"})
    inputs.emplace_back(s);
  run_all(kd::fuzz::tokenizer_json_input, "tokenizer_json", inputs);
}

}  // namespace
