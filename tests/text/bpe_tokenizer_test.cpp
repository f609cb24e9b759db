// BpeTokenizerTest: the byte map, the pre-tokenizer's invariants and BPE merging on a tiny vocabulary
// built here, lossy decoding, and bad input. BpeTokenizerParityTest: the real SmolLM2 tokenizer (GGUF
// metadata, and the same tokenizer as a Hugging Face tokenizer.json) against transformers' ids on every
// line of wikitext-2 test and valid plus hard cases, for both pre-tokenizers (tests/python/golden_llm.py).
#include "kd/text/bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/text/unicode.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "tiny_bpe.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using kd::test::tiny_bpe;
kd::BpeTokenizer tiny(const std::vector<std::string>& merges, std::vector<std::string> extra = {},
                      std::vector<kd::BpeTokenType> extra_types = {}) {
  return tiny_bpe(merges, std::move(extra), std::move(extra_types));
}

TEST(BpeTokenizerTest, ByteMapIsABijectionOntoPrintableCodePoints) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = kd::gpt2_byte_to_unicode(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(cp).second) << b;
    EXPECT_EQ(kd::gpt2_unicode_to_byte(cp), b);
    EXPECT_FALSE(kd::unicode::is_whitespace(cp)) << b;
    if (b > 0x20 && b < 0x7F) EXPECT_EQ(cp, static_cast<char32_t>(b));
  }
  EXPECT_EQ(kd::gpt2_unicode_to_byte(U'€'), -1);
}

TEST(BpeTokenizerTest, PreTokenizerPiecesCoverTheTextAndIsolateDigits) {
  std::mt19937 rng(11);
  const std::vector<std::string> pool = {"a", "Z", "é", "日", " ", "  ", "\n", "\t", "1", "٣", "½", "'", "'s", "'ll",
                                         "!", "?", "😀", "\u00a0", "-", "x"};
  for (int n = 0; n < 500; ++n) {
    std::string text;
    const int len = static_cast<int>(rng() % 20);
    for (int k = 0; k < len; ++k) text += pool[rng() % pool.size()];
    for (auto pre : {kd::BpePreTokenizer::Gpt2, kd::BpePreTokenizer::SmolLM}) {
      std::string joined;
      for (auto p : kd::bpe_pre_tokenize(text, pre)) {
        EXPECT_FALSE(p.empty());
        joined += p;
        if (pre == kd::BpePreTokenizer::SmolLM && (p.find('1') != std::string::npos)) EXPECT_EQ(p, "1");
      }
      EXPECT_EQ(joined, text);
    }
  }
}

TEST(BpeTokenizerTest, MergesApplyLowestRankFirst) {
  // "a b" outranks "b c", so "abc" becomes "ab" + "c" even though "bc" is also a merge.
  auto t = tiny({"a b", "b c", "ab c"});
  const auto ab = *t.token_id("ab"), abc = *t.token_id("abc");
  EXPECT_EQ(t.encode("abc"), (std::vector<int64_t>{abc}));
  EXPECT_EQ(t.encode("abab"), (std::vector<int64_t>{ab, ab}));
  auto u = tiny({"b c", "a b", "a bc"});
  EXPECT_EQ(u.encode("abc"), (std::vector<int64_t>{*u.token_id("abc")}));
  EXPECT_EQ(u.encode("ab"), (std::vector<int64_t>{*u.token_id("ab")}));
  // Bytes without merges stay single-byte tokens; decoding gives the text back.
  const std::string text = "x é 日 😀\n";
  const auto ids = t.encode(text);
  EXPECT_EQ(ids.size(), std::string_view(text).size());
  EXPECT_EQ(t.decode(ids), text);
}

TEST(BpeTokenizerTest, SpecialTokensAreWholeUnitsAndCanBeSkipped) {
  auto t = tiny({}, {"<|s|>", "<|long|>", "<|lo"}, {kd::BpeTokenType::Control, kd::BpeTokenType::Control,
                                                    kd::BpeTokenType::UserDefined});
  const auto s = *t.token_id("<|s|>"), lng = *t.token_id("<|long|>"), lo = *t.token_id("<|lo");
  EXPECT_TRUE(t.is_special(s));
  const auto ids = t.encode("a<|s|><|long|>b<|lo");
  EXPECT_EQ(ids, (std::vector<int64_t>{*t.token_id("a"), s, lng, *t.token_id("b"), lo}));
  EXPECT_EQ(t.decode(ids), "a<|s|><|long|>b<|lo");
  EXPECT_EQ(t.decode(ids, true), "ab");
  EXPECT_EQ(t.encode("<|s|>", false).size(), 5u);  // as ordinary text: one token a byte
}

TEST(BpeTokenizerTest, LossyDecodingReplacesInvalidBytes) {
  EXPECT_EQ(kd::utf8_lossy("ok"), "ok");
  EXPECT_EQ(kd::utf8_lossy("\xC3"), "\xEF\xBF\xBD");
  EXPECT_EQ(kd::utf8_lossy("\xE6\x97"), "\xEF\xBF\xBD");         // a cut 3-byte character: one U+FFFD
  EXPECT_EQ(kd::utf8_lossy("\xE6\x97" "a"), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(kd::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: each byte
  EXPECT_EQ(kd::utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

TEST(BpeTokenizerTest, BadInputIsRefused) {
  EXPECT_THROW(tiny({}).encode("\xFF"), kd::DataError);
  EXPECT_THROW(tiny({}).token(100000), kd::ConfigError);
  std::vector<std::string> tokens = {"a", "b"};
  EXPECT_THROW(kd::BpeTokenizer(tokens, {"a b"}, {}, kd::BpePreTokenizer::Gpt2), kd::FormatError);
  EXPECT_THROW(kd::BpeTokenizer(tokens, {"ab"}, {}, kd::BpePreTokenizer::Gpt2), kd::FormatError);
}

// ---------------------------------------------------------------------------------------------------
// Parity with transformers on the real tokenizer

std::string golden_file(const std::string& name) {
  const std::string p = kd::test::golden("llm/" + name);
  if (!fs::exists(p)) throw std::runtime_error(p + " missing: run the golden_references test (make_golden.py) first");
  return p;
}

std::vector<json> read_jsonl(const std::string& name) {
  std::ifstream in(golden_file(name));
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// The lines of a wikitext-2 file that hold more than whitespace, counted here from the file itself: the
// golden sets are "every non-empty line", and a set that lost lines on the way must fail, not match.
size_t nonblank_lines(const std::string& name) {
  std::ifstream in(kd::test::shared_data("wikitext2/" + name), std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  size_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r\v\f") != std::string::npos) ++n;
  return n;
}

// Encodes every row and counts the texts whose ids differ; prints the first few.
size_t mismatches(const kd::BpeTokenizer& tok, const std::vector<json>& rows, const std::string& what) {
  size_t bad = 0;
  for (const auto& r : rows) {
    const auto ids = tok.encode(r["text"].get<std::string>());
    if (ids == r["ids"].get<std::vector<int64_t>>()) continue;
    if (++bad <= 3) ADD_FAILURE() << what << ": ids differ for " << r["text"].dump();
  }
  return bad;
}

class BpeTokenizerParityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = new kd::BpeTokenizer(kd::BpeTokenizer::from_gguf(kd::test::llm_gguf())); }
  static void TearDownTestSuite() { delete tok_; }
  static kd::BpeTokenizer* tok_;
};
kd::BpeTokenizer* BpeTokenizerParityTest::tok_ = nullptr;

TEST_F(BpeTokenizerParityTest, GgufMetadataGivesTheSmolLMTokenizer) {
  EXPECT_EQ(tok_->pre_tokenizer(), kd::BpePreTokenizer::SmolLM);
  const auto prompts = kd::read_json(golden_file("model_prompts.json"));
  EXPECT_EQ(tok_->vocab_size(), prompts["config"]["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok_->bos_id, prompts["config"]["bos_token_id"].get<int64_t>());
  EXPECT_EQ(tok_->eos_id, prompts["config"]["eos_token_id"].get<int64_t>());
  EXPECT_EQ(tok_->pad_id, prompts["config"]["pad_token_id"].get<int64_t>());
}

TEST_F(BpeTokenizerParityTest, IdsMatchOnAllOfWikitext2AndHardCases) {
  const std::map<std::string, size_t> file_lines = {{"wiki_test", nonblank_lines("wiki.test.tokens")},
                                                    {"wiki_valid", nonblank_lines("wiki.valid.tokens")}};
  for (const std::string set : {"wiki_test", "wiki_valid", "hard_cases"}) {
    const auto rows = read_jsonl("tokens_smollm_" + set + ".jsonl");
    ASSERT_GT(rows.size(), 40u);
    if (file_lines.count(set)) EXPECT_EQ(rows.size(), file_lines.at(set)) << set << ": rows compared vs lines in the file";
    EXPECT_EQ(mismatches(*tok_, rows, "smollm " + set), 0u) << "of " << rows.size();
    for (const auto& r : rows) {  // and decoding gives every text back
      const std::string text = r["text"];
      const auto ids = r["ids"].get<std::vector<int64_t>>();
      if (tok_->decode(ids) != text) ADD_FAILURE() << "decode differs for " << r["text"].dump();
    }
  }
}

TEST_F(BpeTokenizerParityTest, Gpt2PreTokenizerMatchesTheStockConverter) {
  kd::BpeTokenizer gpt2 = *tok_;
  gpt2.set_pre_tokenizer(kd::BpePreTokenizer::Gpt2);
  for (const std::string set : {"wiki_test", "wiki_valid", "hard_cases"}) {
    const auto rows = read_jsonl("tokens_gpt2_" + set + ".jsonl");
    if (set != "hard_cases")
      EXPECT_EQ(rows.size(), nonblank_lines(set == "wiki_test" ? "wiki.test.tokens" : "wiki.valid.tokens")) << set;
    EXPECT_EQ(rows.size(), read_jsonl("tokens_smollm_" + set + ".jsonl").size()) << set;
    EXPECT_EQ(mismatches(gpt2, rows, "gpt2 " + set), 0u) << set << " of " << rows.size();
  }
}

TEST_F(BpeTokenizerParityTest, TokenizerJsonLoadsTheSameTokenizer) {
  const auto t = kd::BpeTokenizer::from_tokenizer_json(golden_file("tokenizer_smollm.json"));
  EXPECT_EQ(t.pre_tokenizer(), kd::BpePreTokenizer::SmolLM);
  EXPECT_EQ(t.vocab_size(), tok_->vocab_size());
  EXPECT_EQ(mismatches(t, read_jsonl("tokens_smollm_hard_cases.jsonl"), "tokenizer.json hard_cases"), 0u);
  auto wiki = read_jsonl("tokens_smollm_wiki_test.jsonl");
  wiki.resize(300);
  EXPECT_EQ(mismatches(t, wiki, "tokenizer.json wiki_test"), 0u);
}

TEST_F(BpeTokenizerParityTest, DecodingMatchesIncludingInvalidUtf8) {
  for (const auto& r : read_jsonl("decode_cases.jsonl")) {
    const auto ids = r["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok_->decode(ids), r["text"].get<std::string>()) << r["ids"].dump();
    EXPECT_EQ(tok_->decode(ids, true), r["text_skip"].get<std::string>()) << r["ids"].dump();
  }
}

}  // namespace
