// WordPieceTokenizerTest: behaviour on a small hand-made vocabulary (no files beyond temp dirs).
// TokenizerParityTest: ids identical to Hugging Face's BertTokenizerFast on real data (golden files
// written by tests/python/golden_tokenizer.py from the real checkpoint).
//
// Hugging Face's fast and slow tokenizers do not always agree; we follow the fast one. The golden
// script records the differences in <golden>/tokenizer/fast_slow.json. With transformers 4.56.2 /
// tokenizers 0.22.2 (Python 3.11, Unicode 14) they agree on every sentence of SST-2 dev, TREC-6 test
// and AG News test. They differ on: (1) unassigned code points (U+0378, U+FB12, U+0E5C, ...): the
// slow one drops them as category C*, the fast one keeps them (usually giving [UNK]); (2) characters
// whose class changed after Unicode 8, the fast tokenizer's tables: U+061D is not punctuation
// there, U+166D is, U+1734 is a nonspacing mark, U+0890 is not a format character; (3) Unicode 16
// letters (U+A7CB, U+1C89, U+10D50), which only the fast one lower-cases; (4) "longest_first"
// truncation of a pair when both sides must shrink and the budget is odd: the fast tokenizer gives
// the spare token to the longer sequence (the second on a tie), the slow one to the first; (5) an
// empty second text: the fast one encodes a single sequence, the slow one a pair with an empty
// side; (6) max_length leaving no room for the text: the slow one refuses to truncate.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/text/wordpiece_tokenizer.h"
#include "../test_paths.h"  // tests/ is not on the include path

using kd::WordPieceOptions;
using kd::WordPieceTokenizer;
using Tokens = std::vector<std::string>;

namespace {

std::vector<std::string> small_vocab() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", "world", ",", "!",
          "a", "b", "##b", "c", "中", "cafe", "café", "i", "##̇", "straße", "ß", "x", "##x"};
}

WordPieceTokenizer small(WordPieceOptions o = {}) { return WordPieceTokenizer(small_vocab(), o); }

template <typename E, typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST(WordPieceTokenizerTest, SplitsOnWhitespaceAndPunctuation) {
  EXPECT_EQ(small().tokenize("Hello,world!  \t\n a"), (Tokens{"hello", ",", "world", "!", "a"}));
  EXPECT_EQ(small().tokenize(""), Tokens{});
  EXPECT_EQ(small().tokenize(" \u00a0\u3000 "), Tokens{});
}

TEST(WordPieceTokenizerTest, GreedyLongestMatchWithContinuations) {
  EXPECT_EQ(small().tokenize("unaffable"), (Tokens{"un", "##aff", "##able"}));
  EXPECT_EQ(small().tokenize("bbb xx"), (Tokens{"b", "##b", "##b", "x", "##x"}));
  // One unmatched piece makes the whole word a single [UNK], not a partial match.
  EXPECT_EQ(small().tokenize("unaffablez hello"), (Tokens{"[UNK]", "hello"}));
  EXPECT_EQ(small().tokenize("zzz"), Tokens{"[UNK]"});
}

TEST(WordPieceTokenizerTest, LongWordsBecomeUnknown) {
  WordPieceOptions o;
  o.max_input_chars_per_word = 5;
  EXPECT_EQ(small(o).tokenize("hello"), Tokens{"hello"});
  EXPECT_EQ(small(o).tokenize("bbbbbb b"), (Tokens{"[UNK]", "b"}));
  o.max_input_chars_per_word = 4;
  EXPECT_EQ(small(o).tokenize("hello"), Tokens{"[UNK]"});
}

TEST(WordPieceTokenizerTest, LowercaseAndAccents) {
  EXPECT_EQ(small().tokenize("HELLO Café"), (Tokens{"hello", "cafe"}));  // strip_accents follows lowercase
  WordPieceOptions keep;
  keep.strip_accents = false;
  EXPECT_EQ(small(keep).tokenize("Café CAFE\u0301"), (Tokens{"café", "[UNK]"}));  // no NFC: e + U+0301 stays
  WordPieceOptions cased;
  cased.lowercase = false;
  EXPECT_EQ(small(cased).tokenize("Hello hello"), (Tokens{"[UNK]", "hello"}));
  // İ lower-cases to two characters, i + U+0307, when accents are kept; stripped it is just i.
  EXPECT_EQ(small(keep).pre_tokenize("İ"), Tokens{"i\u0307"});
  EXPECT_EQ(small(keep).tokenize("İ"), (Tokens{"i", "##̇"}));
  EXPECT_EQ(small().tokenize("İ"), Tokens{"i"});
  EXPECT_EQ(small().tokenize("STRASSE straße ẞ"), (Tokens{"[UNK]", "straße", "ß"}));  // no ß <-> ss folding
}

TEST(WordPieceTokenizerTest, CleansTextAndSpacesCjk) {
  EXPECT_EQ(small().tokenize("he\u200bllo\x01 wor\u00adld"), (Tokens{"hello", "world"}));
  EXPECT_EQ(small().tokenize("a\u00a0b\u2028c"), (Tokens{"a", "b", "c"}));
  EXPECT_EQ(small().tokenize("a中b"), (Tokens{"a", "中", "b"}));
  WordPieceOptions o;
  o.tokenize_chinese_chars = false;
  EXPECT_EQ(small(o).tokenize("a中b"), Tokens{"[UNK]"});
  o.clean_text = false;
  EXPECT_EQ(small(o).pre_tokenize("a\x01" "b"), Tokens{"a\x01" "b"});
}

TEST(WordPieceTokenizerTest, SpecialTokensWrittenInTextAreKept) {
  auto t = small();
  EXPECT_EQ(t.tokenize("hello[SEP]world [MASK]"), (Tokens{"hello", "[SEP]", "world", "[MASK]"}));
  EXPECT_EQ(t.tokenize("[sep]"), (Tokens{"[UNK]", "[UNK]", "[UNK]"}))
      << "matching is case-sensitive, before lower-casing";
}

TEST(WordPieceTokenizerTest, EncodesPairsWithTypeIds) {
  auto t = small();
  auto e = t.encode("hello", std::string_view("world !"));
  EXPECT_EQ(e.ids, (std::vector<int64_t>{2, 8, 3, 9, 11, 3}));
  EXPECT_EQ(e.type_ids, (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
  auto single = t.encode("a b");
  EXPECT_EQ(single.ids, (std::vector<int64_t>{2, 12, 13, 3}));
  EXPECT_EQ(single.type_ids, (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(t.encode("a b", std::string_view("")).ids, single.ids) << "an empty second text is no pair";
}

TEST(WordPieceTokenizerTest, TruncatesLongestFirst) {
  auto t = small();
  auto lengths = [&](int na, int nb, int64_t max_length) {
    std::string a, b;
    for (int i = 0; i < na; ++i) a += "a ";
    for (int i = 0; i < nb; ++i) b += "b ";
    auto e = t.encode(a, std::string_view(b), max_length);
    int64_t la = 0;
    for (size_t i = 1; i < e.size() && e.ids[i] != t.sep_id(); ++i) ++la;
    EXPECT_LE(e.size(), static_cast<size_t>(max_length));
    return std::pair<int64_t, int64_t>(la, static_cast<int64_t>(e.size()) - la - 3);
  };
  EXPECT_EQ(lengths(3, 20, 10), std::make_pair(int64_t{3}, int64_t{4}));  // only the longer side shrinks
  EXPECT_EQ(lengths(20, 3, 10), std::make_pair(int64_t{4}, int64_t{3}));
  EXPECT_EQ(lengths(7, 6, 14), std::make_pair(int64_t{6}, int64_t{5}));
  EXPECT_EQ(lengths(6, 6, 14), std::make_pair(int64_t{5}, int64_t{6}));  // tie: the spare token goes to b
  EXPECT_EQ(lengths(6, 7, 12), std::make_pair(int64_t{4}, int64_t{5}));  // else to the longer side
  EXPECT_EQ(lengths(6, 6, 3), std::make_pair(int64_t{0}, int64_t{0}));
  EXPECT_EQ(lengths(2, 2, 64), std::make_pair(int64_t{2}, int64_t{2}));
  EXPECT_EQ(t.encode("a b c a b c", std::nullopt, 4).ids, (std::vector<int64_t>{2, 12, 13, 3}));
  EXPECT_THROW(t.encode("a", std::string_view("b"), 2), kd::ConfigError);
  EXPECT_THROW(t.encode("a", std::nullopt, 1), kd::ConfigError);
}

TEST(WordPieceTokenizerTest, InvalidUtf8IsADataError) {
  auto t = small();
  const std::string msg = error_of<kd::DataError>([&] { t.tokenize("abc\xC3(def"); });
  EXPECT_NE(msg.find("invalid UTF-8 at byte offset 3"), std::string::npos) << msg;
  EXPECT_NE(error_of<kd::DataError>([&] { t.tokenize("[SEP]x\xED\xA0\x80"); }).find("offset 6"), std::string::npos)
      << "surrogates are invalid; offsets count from the start of the text";
  EXPECT_THROW(t.tokenize("\xC0\xAF"), kd::DataError);          // overlong
  EXPECT_THROW(t.tokenize("\xF4\x90\x80\x80"), kd::DataError);  // above U+10FFFF
  EXPECT_THROW(t.tokenize("abc\xE2\x82"), kd::DataError);       // truncated
  EXPECT_THROW(t.encode("ok", std::string_view("\xFF")), kd::DataError);
}

TEST(WordPieceTokenizerTest, MissingAndMalformedFiles) {
  auto dir = kd::test::temp_dir("wordpiece_missing");
  const std::string missing = (dir / "nope").string();
  EXPECT_NE(error_of<kd::IoError>([&] { WordPieceTokenizer::from_folder(missing); }).find(missing), std::string::npos);
  const std::string empty_msg = error_of<kd::IoError>([&] { WordPieceTokenizer::from_folder(dir.string()); });
  EXPECT_NE(empty_msg.find("tokenizer.json or vocab.txt"), std::string::npos) << empty_msg;

  kd::write_file_atomic((dir / "tokenizer.json").string(), "{\"model\": [1, 2,");
  EXPECT_NE(error_of<kd::FormatError>([&] { WordPieceTokenizer::from_folder(dir.string()); }).find("tokenizer.json"),
            std::string::npos);
  kd::write_file_atomic((dir / "tokenizer.json").string(), R"({"model": {"type": "BPE", "vocab": {}}})");
  EXPECT_THROW(WordPieceTokenizer::from_folder(dir.string()), kd::FormatError);
  std::filesystem::remove(dir / "tokenizer.json");

  kd::write_file_atomic((dir / "vocab.txt").string(), "[PAD]\n[CLS]\n[SEP]\n");
  const std::string no_unk = error_of<kd::FormatError>([&] { WordPieceTokenizer::from_folder(dir.string()); });
  EXPECT_NE(no_unk.find("vocab.txt"), std::string::npos) << no_unk;
  EXPECT_NE(no_unk.find("[UNK]"), std::string::npos) << no_unk;
  kd::write_file_atomic((dir / "vocab.txt").string(), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
  kd::write_file_atomic((dir / "tokenizer_config.json").string(), R"({"do_lower_case": "yes"})");
  const std::string bad_key = error_of<kd::FormatError>([&] { WordPieceTokenizer::from_folder(dir.string()); });
  EXPECT_NE(bad_key.find("tokenizer_config.json:do_lower_case"), std::string::npos) << bad_key;
  kd::write_file_atomic((dir / "vocab.txt").string(), "[PAD]\n[UNK]\xFF\n");
  EXPECT_THROW(WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string()), kd::FormatError);
}

TEST(WordPieceTokenizerTest, ReadsVocabTxtLikePython) {
  auto dir = kd::test::temp_dir("wordpiece_vocab_txt");
  // CRLF and CR end lines too; a duplicate maps to its last line; no final newline is fine.
  kd::write_file_atomic((dir / "vocab.txt").string(), "[PAD]\r\n[UNK]\r[CLS]\n[SEP]\nhello\nhello\n##s");
  auto t = WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string());
  EXPECT_EQ(t.vocab_size(), 7);
  EXPECT_EQ(t.token_to_id("hello"), 5);
  EXPECT_EQ(t.id_to_token(4), "hello");
  EXPECT_EQ(t.tokenize_to_ids("hellos"), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(t.token_to_id("absent"), t.unk_id());
  EXPECT_THROW(t.id_to_token(7), kd::ConfigError);
}

TEST(WordPieceTokenizerTest, SaveAndLoadRoundTrip) {
  auto dir = kd::test::temp_dir("wordpiece_round_trip");
  for (bool defaults : {true, false}) {
    WordPieceOptions o;
    if (!defaults) {
      o.lowercase = false;
      o.strip_accents = true;
      o.tokenize_chinese_chars = false;
      o.clean_text = false;
      o.max_input_chars_per_word = 7;
      o.model_max_length = 128;
    }
    auto t = small(o);
    const std::string out = (dir / (defaults ? "defaults" : "custom")).string();
    t.save(out);
    for (const char* f : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
      EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(out) / f)) << f;
    }
    auto back = WordPieceTokenizer::from_folder(out);
    EXPECT_EQ(back.vocab(), t.vocab());
    EXPECT_EQ(back.options().lowercase, o.lowercase);
    EXPECT_EQ(back.options().strip_accents, o.strip_accents);
    EXPECT_EQ(back.options().tokenize_chinese_chars, o.tokenize_chinese_chars);
    EXPECT_EQ(back.options().clean_text, o.clean_text);
    EXPECT_EQ(back.options().max_input_chars_per_word, o.max_input_chars_per_word);
    EXPECT_EQ(back.options().model_max_length, o.model_max_length);
    for (const char* text : {"Hello, café 中 world!", "unaffable bbbbbbbbb", "İ x\x01x"}) {
      EXPECT_EQ(back.tokenize_to_ids(text), t.tokenize_to_ids(text)) << text;
    }
  }
}

TEST(WordPieceTokenizerTest, ReadsTokenizerJson) {
  auto dir = kd::test::temp_dir("wordpiece_tokenizer_json");
  nlohmann::json vocab;
  const auto words = small_vocab();
  for (size_t i = 0; i < words.size(); ++i) vocab[words[i]] = i;
  nlohmann::json j = {
      {"added_tokens", nlohmann::json::array()},
      {"normalizer",
       {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}, {"strip_accents", nullptr},
        {"lowercase", false}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"model",
       {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 6}, {"vocab", vocab}}}};
  kd::write_json_atomic((dir / "tokenizer.json").string(), j);
  auto t = WordPieceTokenizer::from_folder(dir.string());
  EXPECT_FALSE(t.options().lowercase);
  EXPECT_EQ(t.options().max_input_chars_per_word, 6);
  EXPECT_EQ(t.tokenize("Hello hello unaffable"), (Tokens{"[UNK]", "hello", "[UNK]"}));
  // As in Hugging Face's AutoTokenizer, tokenizer_config.json overrides the normalizer settings.
  kd::write_json_atomic((dir / "tokenizer_config.json").string(), {{"do_lower_case", true}});
  EXPECT_EQ(WordPieceTokenizer::from_folder(dir.string()).tokenize("Hello"), Tokens{"hello"});
}

// ---- Parity with Hugging Face ---------------------------------------------------------------------

namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& name) {
  const std::string path = kd::test::golden("tokenizer/" + name);
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "missing golden file " << path << " (run the golden_references test or "
                  << "tests/python/make_golden.py --only tokenizer)";
    return {};
  }
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

std::string ids_str(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

const WordPieceTokenizer& checkpoint() {
  static const WordPieceTokenizer tok = WordPieceTokenizer::from_folder(kd::test::model_dir());
  return tok;
}

// The data rows of a file, counted without any table reader (neither kd's nor the golden script's): lines
// that hold something, less the header; with `csv_quotes`, a newline inside double quotes does not end a
// row (RFC 4180). A reader that silently dropped or merged rows would give another number.
size_t count_data_rows(const std::string& path, bool header, bool csv_quotes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return 0;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t rows = 0;
  bool quoted = false, content = false;
  for (const char c : text) {
    if (csv_quotes && c == '"') quoted = !quoted;
    if (c == '\n' && !quoted) {
      rows += content;
      content = false;
    } else if (c != '\r') {
      content = true;
    }
  }
  rows += content;
  return header && rows > 0 ? rows - 1 : rows;
}

// The sentences of each real data set, counted in the data file itself.
size_t sst2_dev_rows() { return count_data_rows(kd::test::shared_data("sst2/dev.tsv"), true, false); }
size_t trec6_test_rows() { return count_data_rows(kd::test::shared_data("trec6/test.tsv"), true, false); }
size_t ag_news_test_rows() { return count_data_rows(kd::test::shared_data("ag_news/test.csv"), false, true); }

// Every sentence of a set must give the reference ids: 0 mismatches, and, for a set taken from a data file,
// as many rows compared as the file has (`expected_rows`), so that rows lost on the way (by the golden
// script or by reading its output) fail too. Reports the count and the first mismatch.
void expect_set_matches(const WordPieceTokenizer& tok, const std::string& name,
                        std::optional<size_t> expected_rows = std::nullopt) {
  const auto rows = read_jsonl(name + ".jsonl");
  ASSERT_FALSE(rows.empty()) << name;
  if (expected_rows) {
    EXPECT_EQ(rows.size(), *expected_rows) << name << ": rows compared vs data rows in the file";
  }
  size_t matched = 0;
  std::string first_mismatch;
  for (const auto& row : rows) {
    const std::string text = row["text"];
    const auto want = row["ids"].get<std::vector<int64_t>>();
    const auto got = tok.encode(text).ids;
    if (got == want) {
      ++matched;
    } else if (first_mismatch.empty()) {
      first_mismatch =
          "text: " + nlohmann::json(text).dump() + "\n  want: " + ids_str(want) + "\n  got:  " + ids_str(got);
    }
  }
  std::cout << "[parity] " << name << ": " << matched << "/" << rows.size() << " identical\n";
  EXPECT_EQ(rows.size() - matched, 0u) << name << ": mismatches, first:\n  " << first_mismatch;
}

}  // namespace

TEST(TokenizerParityTest, LoadsCheckpointSettings) {
  const auto& t = checkpoint();
  EXPECT_EQ(t.vocab_size(), 30522);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 100);
  EXPECT_EQ(t.cls_id(), 101);
  EXPECT_EQ(t.sep_id(), 102);
  EXPECT_TRUE(t.options().lowercase);
  EXPECT_FALSE(t.options().strip_accents.has_value());
  EXPECT_EQ(t.options().model_max_length, 512);
}

TEST(TokenizerParityTest, Sst2Dev) { expect_set_matches(checkpoint(), "sst2_dev", sst2_dev_rows()); }
TEST(TokenizerParityTest, Trec6Test) { expect_set_matches(checkpoint(), "trec6_test", trec6_test_rows()); }
TEST(TokenizerParityTest, AgNewsTest) { expect_set_matches(checkpoint(), "ag_news_test", ag_news_test_rows()); }
TEST(TokenizerParityTest, HardCases) { expect_set_matches(checkpoint(), "hard_cases"); }

TEST(TokenizerParityTest, PairsAndTruncation) {
  const auto rows = read_jsonl("pairs.jsonl");
  ASSERT_FALSE(rows.empty());
  size_t matched = 0;
  for (const auto& row : rows) {
    const std::string a = row["a"];
    const std::optional<std::string> b = row["b"].is_null() ? std::nullopt : std::optional(row["b"].get<std::string>());
    const int64_t max_length = row["max_length"];
    const auto e = checkpoint().encode(a, b ? std::optional<std::string_view>(*b) : std::nullopt, max_length);
    const bool ok = e.ids == row["ids"].get<std::vector<int64_t>>() &&
                    e.type_ids == row["type_ids"].get<std::vector<int64_t>>();
    if (ok) {
      ++matched;
    } else {
      ADD_FAILURE() << "pair mismatch (max_length " << max_length << ")\n  a: " << a
                    << "\n  b: " << b.value_or("<none>")
                    << "\n  want: " << ids_str(row["ids"].get<std::vector<int64_t>>())
                    << "\n  got:  " << ids_str(e.ids);
      break;
    }
  }
  std::cout << "[parity] pairs: " << matched << "/" << rows.size() << " identical\n";
  EXPECT_EQ(matched, rows.size());
}

// Random strings over tricky characters: ids and normalized words.
TEST(TokenizerParityTest, RandomMix) {
  expect_set_matches(checkpoint(), "random_mix");
  size_t matched = 0;
  const auto rows = read_jsonl("random_mix.jsonl");
  for (const auto& row : rows) {
    const std::string text = row["text"];
    if (checkpoint().pre_tokenize(text) == row["words"].get<Tokens>()) {
      ++matched;
    } else {
      ADD_FAILURE() << "normalized words differ for " << nlohmann::json(text).dump();
      break;
    }
  }
  EXPECT_EQ(matched, rows.size());
}

// Every code point of planes 0-3 and 14 (and the edges of the others), in runs of 256, through the
// normalizer and pre-tokenizer under several settings.
TEST(TokenizerParityTest, UnicodeSweep) {
  const auto rows = read_jsonl("unicode_sweep.jsonl");
  ASSERT_FALSE(rows.empty());
  // What the runs hold, checked here rather than taken from the golden script: each text is its run's
  // code points in order, no two runs overlap, and together they cover every code point of planes 0-3
  // (the surrogates, which UTF-8 cannot carry, aside) and of plane 14.
  const auto code_points = [](const std::string& s) {
    std::vector<int64_t> out;
    for (size_t i = 0; i < s.size();) {
      const auto b = static_cast<unsigned char>(s[i]);
      const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
      int64_t cp = n == 1 ? b : b & (0xFF >> (n + 1));
      for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      out.push_back(cp);
      i += n;
    }
    return out;
  };
  int64_t covered = 0;
  size_t bad_runs = 0;
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (const auto& row : rows) {
    const int64_t first = row["first"], last = row["last"];
    std::vector<int64_t> want;
    for (int64_t cp = first; cp <= last; ++cp) want.push_back(cp);
    if (last < first || code_points(row["text"].get<std::string>()) != want) {
      if (++bad_runs <= 3) ADD_FAILURE() << "run " << first << ".." << last << " is not its code points in order";
    }
    runs.emplace_back(first, last);
    if ((first >> 16) <= 3 || (first >> 16) == 14) covered += last - first + 1;
  }
  std::sort(runs.begin(), runs.end());
  for (size_t k = 1; k < runs.size(); ++k)
    EXPECT_GT(runs[k].first, runs[k - 1].second) << "runs overlap at " << runs[k].first;
  EXPECT_EQ(bad_runs, 0u);
  EXPECT_EQ(covered, 4 * 0x10000 - 0x800 + 0x10000) << "code points of planes 0-3 and 14 in the sweep";
  std::map<std::string, WordPieceOptions> configs;
  configs["default"] = {};
  configs["cased"].lowercase = false;
  configs["lower_keep_accents"].strip_accents = false;
  auto& raw = configs["raw_strip"];
  raw.clean_text = raw.tokenize_chinese_chars = raw.lowercase = false;
  raw.strip_accents = true;
  for (const auto& [name, options] : configs) {
    const WordPieceTokenizer tok(checkpoint().vocab(), options);
    size_t matched = 0;
    for (const auto& row : rows) {
      const auto want = row["words"][name].get<Tokens>();
      const auto got = tok.pre_tokenize(row["text"].get<std::string>());
      if (got == want) {
        ++matched;
        continue;
      }
      size_t i = 0;
      while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
      ADD_FAILURE() << name << ": code points " << row["first"] << ".." << row["last"] << " differ at word " << i
                    << ": want " << nlohmann::json(i < want.size() ? want[i] : "<end>").dump() << ", got "
                    << nlohmann::json(i < got.size() ? got[i] : "<end>").dump();
      break;
    }
    std::cout << "[parity] unicode sweep " << name << ": " << matched << "/" << rows.size() << " runs identical\n";
    EXPECT_EQ(matched, rows.size()) << name;
  }
}

// The vocab.txt + tokenizer_config.json route (no tokenizer.json), and our own save(), give the
// same ids as the checkpoint's tokenizer.json.
TEST(TokenizerParityTest, VocabTxtFolderAndSavedCopyMatch) {
  auto dir = kd::test::temp_dir("tokenizer_parity_vocab_txt");
  std::filesystem::create_directories(dir / "legacy");
  for (const char* f : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    std::filesystem::copy_file(std::filesystem::path(kd::test::model_dir()) / f, dir / "legacy" / f);
  }
  expect_set_matches(WordPieceTokenizer::from_folder((dir / "legacy").string()), "sst2_dev", sst2_dev_rows());
  checkpoint().save((dir / "saved").string());
  const auto saved = WordPieceTokenizer::from_folder((dir / "saved").string());
  expect_set_matches(saved, "hard_cases");
  expect_set_matches(saved, "ag_news_test", ag_news_test_rows());
}
