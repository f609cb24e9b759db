// BERT WordPiece tokenizer, producing the same ids as Hugging Face's BertTokenizer(Fast).
//
// Pipeline (Devlin et al. 2019, BERT; Wu et al. 2016 for WordPiece):
//   clean text (drop U+0000, U+FFFD and control chars, whitespace -> ' ')
//   -> put spaces around CJK ideographs -> lower-case -> strip accents (NFD, drop Mn)
//   -> split on whitespace and punctuation -> greedy longest-match WordPiece with "##" continuations;
//   a word longer than max_input_chars_per_word characters, or one that cannot be matched, becomes [UNK].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kd {

struct WordPieceOptions {
  bool lowercase = true;
  // Unset: follows `lowercase` (Hugging Face's rule for strip_accents=None).
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;
  bool clean_text = true;
  int max_input_chars_per_word = 100;
  std::string continuation_prefix = "##";
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  int64_t model_max_length = 512;
};

// One encoded example, unpadded: [CLS] a [SEP] (b [SEP]).
struct Encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;  // 0 for [CLS] a [SEP], 1 for b [SEP]
  size_t size() const { return ids.size(); }
};

class WordPieceTokenizer {
 public:
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options);

  // Reads a Hugging Face tokenizer folder: tokenizer.json if present (vocab + normalizer settings),
  // else vocab.txt with tokenizer_config.json. Throws IoError/FormatError naming the file.
  static WordPieceTokenizer from_folder(const std::string& dir);
  // vocab.txt: one token per line, the line number (from 0) is the id.
  static WordPieceTokenizer from_vocab_file(const std::string& path, WordPieceOptions options = {});
  static WordPieceTokenizer from_tokenizer_json(const std::string& path);

  // Writes vocab.txt, tokenizer_config.json and special_tokens_map.json (Hugging Face compatible)
  // into `dir`, each file atomically.
  void save(const std::string& dir) const;

  // Word pieces, without special tokens. Input must be valid UTF-8 (DataError otherwise).
  std::vector<std::string> tokenize(std::string_view text) const;
  std::vector<int64_t> tokenize_to_ids(std::string_view text) const;
  // The normalized words WordPiece would see (normalizer + pre-tokenizer only, no special-token
  // matching): what Hugging Face's pre_tokenize_str(normalize_str(text)) returns. For tests.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  // [CLS] a [SEP] or [CLS] a [SEP] b [SEP]; when max_length > 0 the pair is truncated with the
  // "longest_first" strategy (tokens come off the longer side; as in BertTokenizerFast, when both
  // must shrink an odd budget's spare token stays with the longer one) so the result fits.
  // As in Hugging Face, an empty `b` counts as no second sequence; max_length smaller than the
  // special tokens is a ConfigError.
  Encoding encode(std::string_view a, std::optional<std::string_view> b = std::nullopt,
                  int64_t max_length = 0) const;

  int64_t token_to_id(const std::string& token) const;  // unk id if absent
  const std::string& id_to_token(int64_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  int64_t pad_id() const { return pad_id_; }
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  int64_t unk_id() const { return unk_id_; }
  const WordPieceOptions& options() const { return options_; }
  const std::vector<std::string>& vocab() const { return vocab_; }

 private:
  struct Scratch;
  static Scratch& thread_scratch();  // per-thread buffers reused across calls
  // Appends the ids of `text`, splitting out special tokens written verbatim first (as Hugging
  // Face's added-token matching does).
  void append_ids(std::string_view text, std::vector<int64_t>& ids) const;
  // Normalizes `text` (which starts at byte `offset` of the caller's input) into s.normalized.
  void normalize(std::string_view text, size_t offset, Scratch& s) const;
  void append_word_pieces(std::u32string_view word, Scratch& s, std::vector<int64_t>& ids) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> index_;
  WordPieceOptions options_;
  int64_t pad_id_ = 0, cls_id_ = 0, sep_id_ = 0, unk_id_ = 0;
  size_t max_token_bytes_ = 0;  // longest vocabulary entry; longer pieces cannot match
  std::vector<std::pair<std::string, int64_t>> specials_;  // matched verbatim, longest first
};

}  // namespace kd
