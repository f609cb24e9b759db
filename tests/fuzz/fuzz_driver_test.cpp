// FuzzDriverTest: runs each fuzz target (fuzz/*_fuzz.cpp) over a fixed, seeded set of mutations of
// valid inputs: bit flips, truncations, length and count fields overwritten with extreme values,
// random byte runs, and (for tokenizer.json) values of the wrong JSON type. Any exception that is not
// a kd::Error, and any crash, fails the test. The seed inputs are written to
// <build>/test_tmp/fuzz_seeds/<target>/ as a starting corpus for the libFuzzer binaries. The cache
// inputs also come as valid files (checksum and all) with one structural field set to an extreme value.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "fuzz_targets.h"
#include "kd/io/gguf.h"
#include "kd/io/int8_rows.h"
#include "kd/io/safetensors.h"
#include "kd/knowledge/cache_file.h"
#include "kd/knowledge/feature_cache.h"
#include "kd/knowledge/knowledge_cache.h"
#include "kd/knowledge/lm_topk_cache.h"
#include "kd/models/llama.h"
#include "kd/text/bpe_tokenizer.h"
#include "kd/text/wordpiece_tokenizer.h"
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

// inputs[from..] as seeds too (valid cache files with an extreme field, which mutations rarely produce).
void write_seeds_from(const std::string& target, const std::vector<std::string>& inputs, size_t from) {
  for (size_t i = from; i < inputs.size(); ++i) write_seed(target, "extreme" + std::to_string(i - from), inputs[i]);
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
  // "1e999" and the like: a number beyond double (once a nlohmann out_of_range out of the reader).
  // An added token's id written as a float beyond int64 (once converted to an integer: UB).
  for (const char* s : {"1e999", "[1e999]", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1e400}}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": "
                        "[{\"id\": 2.6e47, \"content\": \"x\"}]}",
                        "", "null", "[]", "{}", "{\"model\": []}", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 5}}}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 0}]}",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
                        "{\"type\": \"Sequence\", \"pretokenizers\": [1, 2]}}"})
    inputs.emplace_back(s);
  run_all(kd::fuzz::tokenizer_json_input, "tokenizer_json", inputs);
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Bytes of a safetensors file (header and data) and the size of its 8-byte length plus header.
size_t safetensors_header_size(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return static_cast<size_t>(8 + n);
}

// Inputs for a safetensors-based target: the seed, its byte mutations (mostly in the header) and
// truncations of the header.
std::vector<std::string> safetensors_inputs(const std::string& seed, size_t count, uint64_t rng_seed) {
  const size_t header = safetensors_header_size(seed);
  auto inputs = mutate(seed, header, count, rng_seed);
  inputs.push_back(seed);
  inputs.push_back("");
  for (size_t n = 0; n < header; n += 41) inputs.push_back(seed.substr(0, n));
  return inputs;
}

TEST(FuzzDriverTest, SafetensorsReaderSurvivesMutatedFiles) {
  const auto dir = kd::test::temp_dir("fuzz_safetensors_seed");
  torch::manual_seed(3);
  const auto q = kd::quantize_rows(torch::randn({3, 4}));
  kd::save_safetensors((dir / "seed.safetensors").string(),
                       {{"f32", torch::randn({2, 3})},
                        {"f16", torch::randn({4}).to(torch::kFloat16)},
                        {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
                        {"f64", torch::randn({2}).to(torch::kFloat64)},
                        {"i64", torch::arange(3)},
                        {"i32", torch::arange(2).to(torch::kInt32)},
                        {"i16", torch::arange(2).to(torch::kInt16)},
                        {"u8", torch::arange(3).to(torch::kUInt8)},
                        {"flags", torch::tensor({true, false})},
                        {"empty", torch::zeros({0, 3})},
                        {"w", q.values},
                        {std::string("w") + kd::kInt8ScaleSuffix, q.scales}},
                       {{"format", "pt"}, {"note", "seed"}});
  const std::string seed = read_bytes(dir / "seed.safetensors");
  write_seed("safetensors", "seed.safetensors", seed);
  EXPECT_TRUE(kd::SafeTensorsFile((dir / "seed.safetensors").string()).int8_rows("w"));
  auto inputs = safetensors_inputs(seed, 1200, 21);
  for (const char* s : {"\x02\0\0\0\0\0\0\0{}", "\x02\0\0\0\0\0\0\0[]", "\x0c\0\0\0\0\0\0\0{\"a\":\"b\"}   "})
    inputs.emplace_back(s, 8 + static_cast<size_t>(static_cast<unsigned char>(s[0])));
  run_all(kd::fuzz::safetensors_input, "safetensors", inputs);
}

TEST(FuzzDriverTest, WordPieceVocabSurvivesMutatedFiles) {
  const std::vector<std::string> seeds = {
      "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n,\nworld\n!\nun\n##aff\n##able\nrunning\n##s\ncafe\n日\n本\n##a\n#\n",
      "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r[MASK]\n\n\nx\n##x\n##\n[SEP]",
      "[UNK]\n[CLS]\n[SEP]\n[PAD]\nhello\nHello\nna\n##ïve\n##ive\n語\n"};
  std::vector<std::string> inputs;
  for (size_t i = 0; i < seeds.size(); ++i) {
    write_seed("wordpiece_vocab", "vocab" + std::to_string(i) + ".txt", seeds[i]);
    inputs.push_back(seeds[i]);
    for (auto& m : mutate(seeds[i], 0, 250, 30 + i)) inputs.push_back(std::move(m));
  }
  for (const char* s : {"", "\n", "[UNK]", "[UNK]\n[CLS]\n[SEP]\n[PAD]", "\xff\xfe\n[UNK]"}) inputs.emplace_back(s);
  run_all(kd::fuzz::wordpiece_vocab_input, "wordpiece_vocab", inputs);
}

TEST(FuzzDriverTest, ConfigYamlSurvivesMutatedFiles) {
  std::vector<std::string> seeds = {
      "seed: 7\nrun_dir: runs/x\ndata:\n  train: a.tsv\n  text_columns: [sentence]\n"
      "train:\n  lr: 2.0e-5  # comment\n  epochs: 3\n  schedule: {warmup: 0.1}\n"
      "distill:\n  terms:\n    - {kind: kl, weight: 0.5}\n    - kind: ce\n      weight: 1\n",
      "a: &x {b: [1, 2.5, true, null, ~, \"s\"]}\nc: *x\nd: !!str 12\ne: |\n  text\n  more\nf: [[], {}]\n"};
  for (const auto& e : fs::directory_iterator(fs::path(KD_SOURCE_DIR) / "configs"))  // the project's own configs
    if (e.path().extension() == ".yaml" && seeds.size() < 4) seeds.push_back(read_bytes(e.path()));
  std::vector<std::string> inputs;
  for (size_t i = 0; i < seeds.size(); ++i) {
    write_seed("config_yaml", "config" + std::to_string(i) + ".yaml", seeds[i]);
    inputs.push_back(seeds[i]);
    for (auto& m : mutate(seeds[i], 0, 150, 40 + i)) inputs.push_back(std::move(m));
  }
  // "? [a]\n: 1" and "a:\n  ? {b: 1}\n  : 2": keys that are a list or a map (once a yaml-cpp exception).
  for (const char* s : {"", "~", "[]", "- 1", "train: 5", "train: [1]", "data: {text_columns: {a: 1}}", "a: b: c",
                        "{", "? [a]\n: 1", "~: 1", "a:\n  ? {b: 1}\n  : 2", "train:\n  lr: .inf\n", "seed: 99999999999999999999999"})
    inputs.emplace_back(s);
  run_all(kd::fuzz::config_yaml_input, "config_yaml", inputs);
}

TEST(FuzzDriverTest, TableReaderSurvivesMutatedFiles) {
  const std::vector<std::string> seeds = {
      "sentence\tlabel\tquestion\nhello world\t1\twhy\ncafé ½\t0\t?\n\n",
      "sentence,label,question\n\"a, \"\"quoted\"\"\nline\",1,q\nplain,0,\"\"\r\n",
      "{\"sentence\": \"hi\", \"label\": 1, \"question\": \"q\"}\n{\"sentence\": \"\\u00e9\", \"label\": \"pos\", "
      "\"question\": \"r\", \"1\": \"x\", \"0\": 2}\n",
      "0\thi\n1\tthere\n"};
  std::vector<std::string> inputs;
  for (size_t i = 0; i < seeds.size(); ++i) {
    write_seed("table_reader", "table" + std::to_string(i), seeds[i]);
    inputs.push_back(seeds[i]);
    for (auto& m : mutate(seeds[i], 0, 150, 50 + i)) inputs.push_back(std::move(m));
  }
  // The last two: a number beyond double in a JSONL line (once a nlohmann out_of_range out of read_table).
  for (const char* s : {"", "\n", "sentence", "sentence\tlabel\n\t\n", "\"", "{}", "[1]\n", "{\"sentence\": 1}",
                        "{\"sentence\": \"a\", \"label\": 1e999}\n", "1e400\n"})
    inputs.emplace_back(s);
  run_all(kd::fuzz::table_reader_input, "table_reader", inputs);
}

kd::CacheKey seed_cache_key(int64_t top_k, const std::string& dtype, int64_t classes) {
  kd::CacheKey k;
  k.teacher = "00112233aabbccdd";
  k.tokenizer = "0123456789abcdef";
  k.data = "fedcba9876543210";
  k.text_columns = {"sentence"};
  k.label_column = "label";
  k.table_format = "tsv";
  k.max_length = 16;
  k.top_k = top_k;
  k.dtype = dtype;
  for (int64_t c = 0; c < classes; ++c) k.labels.push_back("class" + std::to_string(c));
  return k;
}

// A valid cache file (checksum and all) with the given tensors and metadata, as its bytes.
std::string cache_bytes(const fs::path& file, const std::string& format, const kd::NamedTensors& tensors,
                        std::map<std::string, std::string> metadata) {
  kd::write_cache_file(file.string(), kd::CacheFormat{format, 1, "cache", "x", "y"}, tensors, std::move(metadata));
  return read_bytes(file);
}

const char* const kExtremes[] = {"-1", "0", "2", "3", "4", "5", "x", "", "2147483648", "4611686018427387904",
                                 "9223372036854775807", "-9223372036854775808", "99999999999999999999"};

TEST(FuzzDriverTest, KnowledgeCacheSurvivesMutatedFiles) {
  const auto dir = kd::test::temp_dir("fuzz_knowledge_seed");
  auto metadata = [](const kd::CacheKey& key, const std::string& classes, const std::string& rows) {
    auto m = key.to_metadata();
    m["num_classes"] = classes;
    m["num_rows"] = rows;
    return m;
  };
  const auto rows = torch::tensor({4, 0, 9, 2}, torch::kLong);
  const std::string dense = cache_bytes(dir / "a", "kd-knowledge", {{"rows", rows}, {"logits", torch::randn({4, 3})}},
                                        metadata(seed_cache_key(0, "F32", 3), "3", "4"));
  const std::string topk = cache_bytes(
      dir / "b", "kd-knowledge",
      {{"rows", rows},
       {"topk_values", torch::randn({4, 2}).to(torch::kFloat16)},
       {"topk_indices", torch::tensor({0, 2, 1, 0, 2, 1, 0, 1}, torch::kInt).view({4, 2})}},
      metadata(seed_cache_key(2, "F16", 3), "3", "4"));
  write_seed("knowledge_cache", "dense.safetensors", dense);
  write_seed("knowledge_cache", "topk.safetensors", topk);
  EXPECT_EQ(kd::CachedKnowledge::open_unchecked((dir / "b").string())->size(), 4);
  auto inputs = safetensors_inputs(dense, 500, 60);
  for (auto& m : safetensors_inputs(topk, 500, 61)) inputs.push_back(std::move(m));
  // Valid files with one field extreme: counts, top_k, class indices, repeated rows.
  const size_t extreme = inputs.size();
  for (const char* v : kExtremes) {
    auto key = seed_cache_key(2, "F16", 3);
    key.top_k = std::atoll(v);
    inputs.push_back(cache_bytes(dir / "c", "kd-knowledge", {{"rows", rows}, {"logits", torch::randn({4, 3})}},
                                 metadata(seed_cache_key(0, "F32", 3), v, "4")));
    inputs.push_back(cache_bytes(dir / "c", "kd-knowledge",
                                 {{"rows", rows},
                                  {"topk_values", torch::randn({4, 2}).to(torch::kFloat16)},
                                  {"topk_indices",
                                   torch::full({4, 2}, static_cast<int32_t>(std::atoll(v)), torch::kInt)}},
                                 metadata(key, "3", v)));
  }
  inputs.push_back(cache_bytes(dir / "c", "kd-knowledge",
                               {{"rows", torch::tensor({1, 1}, torch::kLong)}, {"logits", torch::randn({2, 3})}},
                               metadata(seed_cache_key(0, "F32", 3), "3", "2")));
  write_seeds_from("knowledge_cache", inputs, extreme);
  run_all(kd::fuzz::knowledge_cache_input, "knowledge_cache", inputs);
}

TEST(FuzzDriverTest, FeatureCacheSurvivesMutatedFiles) {
  const auto dir = kd::test::temp_dir("fuzz_feature_seed");
  // Rows of 2, 3 and 1 tokens; hidden states (T, 4) and attention (2 heads, T, T), in F16.
  struct Parts {
    std::vector<int64_t> lengths = {2, 3, 1};
    std::string hidden_shape = "T,4", attn_shape = "2,T,T", num_tokens = "6", num_rows = "3";
    int64_t hidden_n = 24, attn_n = 28;
  };
  auto file = [&](const Parts& p) {
    auto m = seed_cache_key(0, "F16", 2).to_metadata();
    m["features"] = "[\"attn.1\",\"hidden.1\"]";
    m["feature_shapes"] = "{\"attn.1\":\"" + p.attn_shape + "\",\"hidden.1\":\"" + p.hidden_shape + "\"}";
    m["num_rows"] = p.num_rows;
    m["num_classes"] = "2";
    m["num_tokens"] = p.num_tokens;
    return cache_bytes(dir / "f", "kd-features",
                       {{"rows", torch::tensor({7, 3, 5}, torch::kLong)},
                        {"lengths", torch::tensor(p.lengths, torch::kLong)},
                        {"logits", torch::randn({3, 2})},
                        {"attn.1", torch::rand({p.attn_n}).to(torch::kFloat16)},
                        {"hidden.1", torch::randn({p.hidden_n}).to(torch::kFloat16)}},
                       m);
  };
  const std::string seed = file(Parts{});
  write_seed("feature_cache", "features.safetensors", seed);
  {
    kd::FeatureCacheKey key;
    key.base = seed_cache_key(0, "F16", 2);
    key.features = {"attn.1", "hidden.1"};
    EXPECT_EQ(kd::CachedFeatures::open((dir / "f").string(), key)->size(), 3);
  }
  auto inputs = safetensors_inputs(seed, 800, 70);
  // Valid files with one field extreme: row lengths, row shapes, token counts (a length of 2^63 - 1 once
  // overflowed the running sums: undefined behaviour, caught by UBSan in feature_cache_fuzz).
  const size_t extreme = inputs.size();
  for (const char* v : kExtremes) {
    const int64_t n = std::atoll(v);
    Parts p;
    p.lengths = {2, n, 1};
    inputs.push_back(file(p));
    p = Parts{};
    p.hidden_shape = std::string("T,") + v;
    inputs.push_back(file(p));
    p.hidden_shape = std::string(v) + ",T";
    inputs.push_back(file(p));
    p = Parts{};
    p.attn_shape = std::string(v) + ",T,T";
    inputs.push_back(file(p));
    p = Parts{};
    p.num_tokens = v;
    inputs.push_back(file(p));
  }
  for (const char* shape : {"T", "T,T,T", "T,,4", ",", "4", "T,T"}) {
    Parts p;
    p.hidden_shape = shape;
    inputs.push_back(file(p));
  }
  write_seeds_from("feature_cache", inputs, extreme);
  run_all(kd::fuzz::feature_cache_input, "feature_cache", inputs);
}

TEST(FuzzDriverTest, LmTopkCacheSurvivesMutatedFiles) {
  const auto dir = kd::test::temp_dir("fuzz_lm_topk_seed");
  size_t header = 0;
  const auto gguf = kd::GgufFile::from_bytes(seed_gguf(header), "seed.gguf");
  auto teacher = kd::load_llama_gguf(*gguf);
  torch::manual_seed(5);
  const auto windows = torch::randint(0, teacher->options().vocab_size, {2, 5}, torch::kLong);
  kd::LmCacheKey key;
  key.teacher = "t";
  key.tokenizer = "tok";
  key.data = "d";
  key.windows = 2;
  key.seq_len = 5;
  key.top_k = 3;
  const auto path = (dir / "lm.bin").string();
  kd::LmTopkCache::write(path, teacher, windows, key, 2, 4, false);
  EXPECT_EQ(kd::LmTopkCache::open(path, key).rows(), 8);
  const std::string seed = read_bytes(path);
  write_seed("lm_topk_cache", "lm_topk.bin", seed);
  uint64_t hlen = 0;
  std::memcpy(&hlen, seed.data() + 12, 8);
  auto inputs = mutate(seed, 20 + hlen, 600, 80);
  inputs.push_back(seed);
  for (size_t n = 0; n < 20 + hlen; n += 13) inputs.push_back(seed.substr(0, n));
  // The header with one value of another type or removed (the target recomputes the checksum).
  const std::string head = seed.substr(0, 12), payload = seed.substr(20 + hlen);
  auto assemble = [&](const std::string& text) {
    std::string out = head;
    const uint64_t n = text.size();
    out.append(reinterpret_cast<const char*>(&n), 8);
    return out + text + payload;
  };
  const json h = json::parse(seed.substr(20, hlen));
  // Once nlohmann exceptions out of LmTopkCache::open: a header without "key", or with a field of another type.
  for (auto& m : mutate_json(h, 300, 81)) inputs.push_back(assemble(m));
  inputs.push_back(assemble("[]"));
  inputs.push_back(assemble("{\"zlib_bytes\": \"x\"}"));
  const size_t extreme = inputs.size();
  for (const char* field : {"rows", "raw_bytes", "key.windows", "key.seq_len", "key.top_k"})
    for (const char* v : kExtremes) {
      json j = h;
      json& node = std::strncmp(field, "key.", 4) == 0 ? j["key"][field + 4] : j[field];
      node = std::atoll(v);
      inputs.push_back(assemble(j.dump()));
    }
  // Sizes and key fields as floats out of integer range (once undefined behaviour in the conversion).
  for (const char* field : {"zlib_bytes", "raw_bytes", "rows", "key.windows", "key.top_k"})
    for (double v : {-9.3e18, 1e30, 2.5}) {
      json j = h;
      (std::strncmp(field, "key.", 4) == 0 ? j["key"][field + 4] : j[field]) = v;
      inputs.push_back(assemble(j.dump()));
    }
  write_seeds_from("lm_topk_cache", inputs, extreme);
  run_all(kd::fuzz::lm_topk_cache_input, "lm_topk_cache", inputs);
}

}  // namespace
