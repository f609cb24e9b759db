// UTF-8 decoding/encoding and the character classes BERT tokenization needs.
//
// The classes follow Hugging Face's Rust `tokenizers` crate (what BertTokenizerFast runs), not the
// current Unicode database: that crate takes Cc/Cf/Co/Cs, P* and Mn from the `unicode_categories`
// crate, whose tables are from Unicode 8.0; its NFD tables are somewhat newer but still miss recent
// marks; only case mapping is current (Rust's standard library, Unicode 16). We read current data
// from utf8proc and override the few hundred code points that differ (new marks and punctuation,
// recategorised characters, Unicode 16 case pairs); the exhaustive code-point sweep in
// TokenizerParityTest checks every one against the Python package.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kd::unicode {

// Decodes the code point starting at s[pos] and advances pos past it. Strict UTF-8 (RFC 3629): no
// overlong forms, no surrogates, nothing above U+10FFFF. Returns false (pos unchanged) if invalid.
bool decode_utf8(std::string_view s, size_t& pos, char32_t& cp);

// Byte offset of the first invalid UTF-8 sequence, or std::string_view::npos if s is valid.
size_t find_invalid_utf8(std::string_view s);

// Throws kd::DataError naming the byte offset (plus `base_offset`) and the offending bytes, and
// `what` (e.g. "text" or a file name), if s is not valid UTF-8.
void check_utf8(std::string_view s, const std::string& what = "text", size_t base_offset = 0);

// Length of the longest prefix of `bytes` that does not end inside a UTF-8 character: what a stream of
// decoded tokens may print now without splitting a character (the rest waits for the next token).
size_t complete_utf8_prefix(std::string_view bytes);

void append_utf8(std::string& out, char32_t cp);
std::string to_utf8(std::u32string_view s);

// Rust's char::is_whitespace (the White_Space property), plus nothing else: BertPreTokenizer splits
// on it and BertNormalizer's clean_text maps it to ' '.
bool is_whitespace(char32_t cp);

// BertNormalizer's is_control: general category C* except Cn (Cc, Cf, Co, Cs) in Unicode 8.0
// tables, with '\t', '\n' and '\r' excluded (those are whitespace).
bool is_control(char32_t cp);

// BertPreTokenizer's punctuation: ASCII punctuation (33-47, 58-64, 91-96, 123-126) or a P*
// category in Unicode 8.0 tables.
bool is_punctuation(char32_t cp);

// General category Mn in Unicode 8.0 tables (what strip_accents drops after NFD).
bool is_nonspacing_mark(char32_t cp);

// The CJK ideograph blocks of the original BERT code, which get spaces put around them.
bool is_cjk_ideograph(char32_t cp);

// Appends the full lowercase mapping of cp (Rust's char::to_lowercase, not context sensitive):
// usually one code point, but U+0130 (İ) becomes "i" + U+0307.
void append_lowercase(std::u32string& out, char32_t cp);

// Appends the canonical decomposition of cp as Hugging Face's NFD does it (no reordering; see
// canonical_order).
void append_nfd(std::u32string& out, char32_t cp);

// Stable-sorts each run of non-starters (combining class > 0) by combining class, from index
// `from` on; together with append_nfd this gives NFD.
void canonical_order(std::u32string& s, size_t from = 0);

}  // namespace kd::unicode
