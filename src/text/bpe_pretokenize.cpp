// Byte-level BPE pre-tokenization, GPT-2's byte map and lossy UTF-8 decoding (see bpe_tokenizer.h).
// The regex is evaluated by hand on code-point classes: at each position its alternatives are tried in
// order, which is all the backtracking this particular pattern can do.
#include <utf8proc.h>

#include "kd/text/bpe_tokenizer.h"
#include "kd/text/unicode.h"

namespace kd {

namespace {

enum class Cls : uint8_t { Letter, Number, Space, Other };

Cls classify(char32_t cp) {
  if (unicode::is_whitespace(cp)) return Cls::Space;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return Cls::Letter;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return Cls::Number;
    default:
      return Cls::Other;
  }
}

struct Chars {
  std::vector<char32_t> cp;
  std::vector<Cls> cls;
  std::vector<size_t> off;  // byte offset of each code point, plus the end
};

// Length in code points of the contraction ('s 't 're 've 'm 'll 'd) starting at i, or 0.
size_t contraction(const Chars& c, size_t i, size_t hi) {
  if (c.cp[i] != U'\'' || i + 1 >= hi) return 0;
  const char32_t a = c.cp[i + 1];
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 >= hi) return 0;
  const char32_t b = c.cp[i + 2];
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

// GPT-2's pattern on code points [lo, hi); pushes [begin, end) code-point ranges.
void gpt2_split(const Chars& c, size_t lo, size_t hi, std::vector<std::pair<size_t, size_t>>& out) {
  size_t i = lo;
  while (i < hi) {
    if (size_t n = contraction(c, i, hi)) {
      out.emplace_back(i, i + n);
      i += n;
      continue;
    }
    // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional leading ASCII space, then a run of one class.
    const size_t j = (c.cp[i] == U' ' && i + 1 < hi) ? i + 1 : i;
    if (c.cls[j] != Cls::Space) {
      size_t k = j;
      while (k < hi && c.cls[k] == c.cls[j]) ++k;
      out.emplace_back(i, k);
      i = k;
      continue;
    }
    // "\s+(?!\S)" then "\s+": a whitespace run leaves its last character to the next piece when
    // something other than whitespace follows.
    size_t k = i;
    while (k < hi && c.cls[k] == Cls::Space) ++k;
    const size_t end = (k < hi && k - i >= 2) ? k - 1 : k;
    out.emplace_back(i, end);
    i = end;
  }
}

}  // namespace

char32_t gpt2_byte_to_unicode(uint8_t b) {
  // Printable bytes keep their code point; the other 68 are numbered from U+0100 in byte order.
  auto printable = [](int x) { return (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF); };
  if (printable(b)) return b;
  int n = 0;
  for (int x = 0; x < b; ++x) n += printable(x) ? 0 : 1;
  return static_cast<char32_t>(0x100 + n);
}

int gpt2_unicode_to_byte(char32_t cp) {
  static const std::vector<int> table = [] {
    std::vector<int> t(0x144, -1);
    for (int b = 0; b < 256; ++b) t[gpt2_byte_to_unicode(static_cast<uint8_t>(b))] = b;
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

std::vector<std::string_view> bpe_pre_tokenize(std::string_view text, BpePreTokenizer pre) {
  Chars c;
  size_t pos = 0;
  while (pos < text.size()) {
    c.off.push_back(pos);
    char32_t cp;
    if (!unicode::decode_utf8(text, pos, cp)) {  // callers check UTF-8; treat a stray byte as Other
      cp = 0xFFFD;
      ++pos;
    }
    c.cp.push_back(cp);
    c.cls.push_back(classify(cp));
  }
  c.off.push_back(text.size());

  std::vector<std::pair<size_t, size_t>> ranges;
  const size_t n = c.cp.size();
  if (pre == BpePreTokenizer::Gpt2) {
    gpt2_split(c, 0, n, ranges);
  } else {
    size_t start = 0;
    for (size_t i = 0; i < n; ++i) {
      if (c.cls[i] != Cls::Number) continue;
      gpt2_split(c, start, i, ranges);
      ranges.emplace_back(i, i + 1);
      start = i + 1;
    }
    gpt2_split(c, start, n, ranges);
  }
  std::vector<std::string_view> out;
  out.reserve(ranges.size());
  for (auto [b, e] : ranges) out.push_back(text.substr(c.off[b], c.off[e] - c.off[b]));
  return out;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    // Expected length and the allowed range of the second byte (no overlongs, surrogates, > U+10FFFF).
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) { len = 3; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { len = 4; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    size_t k = 1;
    while (len && k < len && i + k < s.size()) {
      const auto cb = static_cast<uint8_t>(s[i + k]);
      const bool ok = k == 1 ? (cb >= lo && cb <= hi) : (cb >= 0x80 && cb <= 0xBF);
      if (!ok) break;
      ++k;
    }
    if (len && k == len) out.append(s.substr(i, len));
    else out += "\xEF\xBF\xBD";  // one U+FFFD for the maximal invalid prefix
    i += k;
  }
  return out;
}

}  // namespace kd
