// Byte-level BPE tokenizer (GPT-2 style; the tokenizer of SmolLM2, LLaMA-3, Qwen and most causal LMs).
//
// Encoding: special tokens are cut out first as whole units (leftmost, longest match; they are never
// split or merged); the text between them is pre-tokenized, every piece's UTF-8 bytes are mapped to
// printable characters with GPT-2's bytes_to_unicode table, and ranked merges are applied (lowest rank
// first, leftmost on ties), as Hugging Face's `tokenizers` BPE does. Decoding maps the characters back
// to bytes and replaces invalid UTF-8 with U+FFFD the way Rust's from_utf8_lossy does.
//
// Pre-tokenizers (GGUF key tokenizer.ggml.pre):
//   gpt2    GPT-2's regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   smollm  every \p{N} code point isolated first, then the gpt2 regex on each remaining piece
//           (llama.cpp's SMOLLM/STARCODER; Hugging Face: Digits(individual_digits) + ByteLevel)
// \p{L}, \p{N} and \s are Unicode general categories L*, N* and the White_Space property (utf8proc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kd {

class GgufFile;

enum class BpePreTokenizer { Gpt2, SmolLM };

// Token types as GGUF numbers them (tokenizer.ggml.token_type).
enum class BpeTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class BpeTokenizer {
 public:
  // `tokens[i]` is token i's byte-level string; `merges` are "left right" in rank order; `types` gives
  // each token's type (Control and UserDefined tokens are matched as whole units; empty: all Normal).
  // FormatError (naming `source`) for a merge whose parts or result are not in the vocabulary.
  BpeTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
               std::vector<BpeTokenType> types, BpePreTokenizer pre, const std::string& source = "tokenizer");

  // From GGUF metadata: tokenizer.ggml.{model (must be gpt2), tokens, merges, token_type, pre,
  // bos/eos/padding_token_id}. An unknown `pre` is a FormatError.
  static BpeTokenizer from_gguf(const GgufFile& file);
  static BpeTokenizer from_gguf(const std::string& path);
  // From a Hugging Face tokenizer.json with a BPE model and a ByteLevel pre-tokenizer (optionally after
  // Digits(individual_digits=true), which selects smollm); added tokens marked special are units.
  // Anything else, or a structure that is not what the format says, is a FormatError naming the file.
  static BpeTokenizer from_tokenizer_json(const std::string& path);
  // The same from the file's text; `source` names it in errors.
  static BpeTokenizer from_tokenizer_json_text(const std::string& text, const std::string& source);
  // This tokenizer as a Hugging Face tokenizer.json (BPE model with vocab and merges, ByteLevel
  // pre-tokenizer after Digits(individual_digits) for smollm, ByteLevel decoder, Control and
  // UserDefined tokens as added tokens, special and not). ConfigError if two tokens share a string
  // (a JSON vocabulary cannot hold that).
  std::string to_tokenizer_json() const;

  // Token ids of `text` (valid UTF-8, else DataError). With `parse_special` false, special-token text
  // is tokenized as ordinary text. No BOS/EOS is added.
  std::vector<int64_t> encode(std::string_view text, bool parse_special = true) const;
  // Text of `ids`; special tokens are written as their text unless `skip_special`.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const;
  // The raw bytes a token stands for (may be part of a UTF-8 character), for streaming output.
  std::string token_bytes(int64_t id) const;

  // Pre-tokenizer pieces of ordinary text (no special-token matching), as UTF-8.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::string& token(int64_t id) const;  // the byte-level string; ConfigError if out of range
  std::optional<int64_t> token_id(const std::string& token) const;
  bool is_special(int64_t id) const;
  BpeTokenType token_type(int64_t id) const;  // ConfigError if out of range
  // The merges "left right" in rank order (best first), as given to the constructor less any that
  // repeated an earlier pair.
  std::vector<std::string> merges() const;
  BpePreTokenizer pre_tokenizer() const { return pre_; }
  void set_pre_tokenizer(BpePreTokenizer pre) { pre_ = pre; }

  int64_t bos_id = -1, eos_id = -1, pad_id = -1;  // -1: none
  // The Jinja chat template that came with the tokenizer (GGUF tokenizer.chat_template or
  // tokenizer_config.json), kept as text; empty when there is none.
  std::string chat_template;

 private:
  struct PairHash {
    size_t operator()(uint64_t k) const { return std::hash<uint64_t>()(k); }
  };
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  std::vector<std::string> tokens_;
  std::vector<BpeTokenType> types_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, Merge, PairHash> merges_;  // (left id << 32 | right id) -> merge
  std::vector<int32_t> byte_ids_;                         // id of each single byte's token
  std::vector<std::string> specials_;                     // texts matched as whole units
  std::vector<int32_t> special_ids_;
  BpePreTokenizer pre_;
  std::string source_;

  void bpe(std::string_view piece, std::vector<int64_t>& out) const;
  void encode_ordinary(std::string_view text, std::vector<int64_t>& out) const;
};

// GPT-2's reversible map from bytes to printable code points (printable Latin-1 bytes map to
// themselves, the rest to U+0100 onwards), and its inverse (-1 where a code point is not in the map).
char32_t gpt2_byte_to_unicode(uint8_t b);
int gpt2_unicode_to_byte(char32_t cp);

// Splits `text` as the given pre-tokenizer does (see above); pieces are views into `text`.
std::vector<std::string_view> bpe_pre_tokenize(std::string_view text, BpePreTokenizer pre);

// Bytes to UTF-8 text, each maximal invalid subsequence replaced by U+FFFD (Rust's from_utf8_lossy).
std::string utf8_lossy(std::string_view bytes);

}  // namespace kd
