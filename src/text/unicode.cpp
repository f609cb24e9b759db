#include "kd/text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iterator>

#include "kd/error.h"

namespace kd::unicode {

namespace {

// A run of code points whose class in the `tokenizers` crate (Unicode 8.0 tables) is `value`
// although utf8proc's current category says otherwise. Sorted, non-overlapping. Regenerate by
// comparing each code point's normalizer/pre-tokenizer output against utf8proc (the parity sweep
// reports any code point that is wrong).
struct Override {
  char32_t lo, hi;
  bool value;
};

// Format characters added after Unicode 8.0; the crate does not know them, so they are kept.
constexpr Override kControlOverrides[] = {
    {0x890, 0x891, false}, {0x8E2, 0x8E2, false}, {0x110CD, 0x110CD, false}, {0x13430, 0x1343F, false}};

// Punctuation added after 8.0 (not split off), U+166D (Po in 8.0, So now) and U+111C9 (Po, now Mn).
constexpr Override kPunctuationOverrides[] = {
    {0x61D, 0x61D, false},     {0x9FD, 0x9FD, false},     {0xA76, 0xA76, false},     {0xC77, 0xC77, false},
    {0xC84, 0xC84, false},     {0x166D, 0x166D, true},    {0x1B7D, 0x1B7E, false},   {0x2E43, 0x2E4F, false},
    {0x2E52, 0x2E5D, false},   {0x10EAD, 0x10EAD, false}, {0x10F55, 0x10F59, false}, {0x10F86, 0x10F89, false},
    {0x111C9, 0x111C9, true},  {0x1144B, 0x1144F, false}, {0x1145A, 0x1145B, false}, {0x1145D, 0x1145D, false},
    {0x11660, 0x1166C, false}, {0x116B9, 0x116B9, false}, {0x1183B, 0x1183B, false}, {0x11944, 0x11946, false},
    {0x119E2, 0x119E2, false}, {0x11A3F, 0x11A46, false}, {0x11A9A, 0x11A9C, false}, {0x11A9E, 0x11AA2, false},
    {0x11B00, 0x11B09, false}, {0x11C41, 0x11C45, false}, {0x11C70, 0x11C71, false}, {0x11EF7, 0x11EF8, false},
    {0x11F43, 0x11F4F, false}, {0x11FFF, 0x11FFF, false}, {0x12FF1, 0x12FF2, false}, {0x16E97, 0x16E9A, false},
    {0x16FE2, 0x16FE2, false}, {0x1E95E, 0x1E95F, false}};

// Non-spacing marks added after 8.0 (kept by strip_accents) and U+1734 (Mn in 8.0, Mc now).
constexpr Override kMarkOverrides[] = {
    {0x7FD, 0x7FD, false},     {0x898, 0x89F, false},     {0x8CA, 0x8E1, false},     {0x9FE, 0x9FE, false},
    {0xAFA, 0xAFF, false},     {0xB55, 0xB55, false},     {0xC04, 0xC04, false},     {0xC3C, 0xC3C, false},
    {0xD00, 0xD00, false},     {0xD3B, 0xD3C, false},     {0xD81, 0xD81, false},     {0xEBA, 0xEBA, false},
    {0xECE, 0xECE, false},     {0x1734, 0x1734, true},    {0x180F, 0x180F, false},   {0x1885, 0x1886, false},
    {0x1ABF, 0x1ACE, false},   {0x1DF6, 0x1DFB, false},   {0xA82C, 0xA82C, false},   {0xA8C5, 0xA8C5, false},
    {0xA8FF, 0xA8FF, false},   {0xA9BD, 0xA9BD, false},   {0x10D24, 0x10D27, false}, {0x10EAB, 0x10EAC, false},
    {0x10EFD, 0x10EFF, false}, {0x10F46, 0x10F50, false}, {0x10F82, 0x10F85, false}, {0x11070, 0x11070, false},
    {0x11073, 0x11074, false}, {0x110C2, 0x110C2, false}, {0x111C9, 0x111C9, false}, {0x111CF, 0x111CF, false},
    {0x1123E, 0x1123E, false}, {0x11241, 0x11241, false}, {0x1133B, 0x1133B, false}, {0x11438, 0x1143F, false},
    {0x11442, 0x11444, false}, {0x11446, 0x11446, false}, {0x1145E, 0x1145E, false}, {0x1182F, 0x11837, false},
    {0x11839, 0x1183A, false}, {0x1193B, 0x1193C, false}, {0x1193E, 0x1193E, false}, {0x11943, 0x11943, false},
    {0x119D4, 0x119D7, false}, {0x119DA, 0x119DB, false}, {0x119E0, 0x119E0, false}, {0x11A01, 0x11A0A, false},
    {0x11A33, 0x11A38, false}, {0x11A3B, 0x11A3E, false}, {0x11A47, 0x11A47, false}, {0x11A51, 0x11A56, false},
    {0x11A59, 0x11A5B, false}, {0x11A8A, 0x11A96, false}, {0x11A98, 0x11A99, false}, {0x11C30, 0x11C36, false},
    {0x11C38, 0x11C3D, false}, {0x11C3F, 0x11C3F, false}, {0x11C92, 0x11CA7, false}, {0x11CAA, 0x11CB0, false},
    {0x11CB2, 0x11CB3, false}, {0x11CB5, 0x11CB6, false}, {0x11D31, 0x11D36, false}, {0x11D3A, 0x11D3A, false},
    {0x11D3C, 0x11D3D, false}, {0x11D3F, 0x11D45, false}, {0x11D47, 0x11D47, false}, {0x11D90, 0x11D91, false},
    {0x11D95, 0x11D95, false}, {0x11D97, 0x11D97, false}, {0x11EF3, 0x11EF4, false}, {0x11F00, 0x11F01, false},
    {0x11F36, 0x11F3A, false}, {0x11F40, 0x11F40, false}, {0x11F42, 0x11F42, false}, {0x13440, 0x13440, false},
    {0x13447, 0x13455, false}, {0x16F4F, 0x16F4F, false}, {0x16FE4, 0x16FE4, false}, {0x1CF00, 0x1CF2D, false},
    {0x1CF30, 0x1CF46, false}, {0x1E000, 0x1E006, false}, {0x1E008, 0x1E018, false}, {0x1E01B, 0x1E021, false},
    {0x1E023, 0x1E024, false}, {0x1E026, 0x1E02A, false}, {0x1E08F, 0x1E08F, false}, {0x1E130, 0x1E136, false},
    {0x1E2AE, 0x1E2AE, false}, {0x1E2EC, 0x1E2EF, false}, {0x1E4EC, 0x1E4EF, false}, {0x1E944, 0x1E94A, false}};

// Case pairs new in Unicode 16.0, which Rust's standard library already maps and utf8proc 2.8
// (Unicode 15.0) does not: lowercase = cp + delta.
struct CaseRange {
  char32_t lo, hi;
  int32_t delta;
};
constexpr CaseRange kLowercaseOverrides[] = {
    {0x1C89, 0x1C89, 1},         {0xA7CB, 0xA7CB, 0x264 - 0xA7CB}, {0xA7CC, 0xA7CC, 1},
    {0xA7CE, 0xA7CE, 1},         {0xA7D2, 0xA7D2, 1},              {0xA7D4, 0xA7D4, 1},
    {0xA7DA, 0xA7DA, 1},         {0xA7DC, 0xA7DC, 0x19B - 0xA7DC}, {0x10D50, 0x10D65, 0x20},
    {0x16EA0, 0x16EB8, 0x1B}};

// Normalization data: Hugging Face's NFD (the unicode-normalization-alignments crate) predates
// these marks, so gives them combining class 0 and never reorders them, and it does not know the
// one canonical decomposition added since (U+11938).
struct Span {
  char32_t lo, hi;
};
constexpr Span kNoCombiningClass[] = {
    {0x7FD, 0x7FD},     {0x898, 0x89F},     {0x8CA, 0x8D3},     {0x9FE, 0x9FE},     {0xC3C, 0xC3C},
    {0xD3B, 0xD3C},     {0xEBA, 0xEBA},     {0x1715, 0x1715},   {0x1ABF, 0x1ACE},   {0x1DF6, 0x1DFA},
    {0xA82C, 0xA82C},   {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50},
    {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
    {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47},
    {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42},
    {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
    {0x1E4EC, 0x1E4EF}};
constexpr char32_t kNoDecomposition = 0x11938;

template <typename T, size_t N>
const T* find_range(const T (&table)[N], char32_t cp) {
  if (cp < table[0].lo || cp > table[N - 1].hi) return nullptr;
  auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                             [](char32_t c, const T& r) { return c < r.lo; });
  if (it == std::begin(table)) return nullptr;
  --it;
  return cp <= it->hi ? &*it : nullptr;
}

utf8proc_category_t category(char32_t cp) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(cp)));
}

bool is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

bool decode_utf8(std::string_view s, size_t& pos, char32_t& cp) {
  const size_t n = s.size();
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    cp = b0;
    ++pos;
    return true;
  }
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return false;
  }
  if (pos + len > n) return false;
  const auto b1 = static_cast<unsigned char>(s[pos + 1]);
  if (b1 < lo || b1 > hi) return false;
  char32_t c = b0 & (0x7F >> len);
  c = (c << 6) | (b1 & 0x3F);
  for (size_t i = 2; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if (!is_cont(b)) return false;
    c = (c << 6) | (b & 0x3F);
  }
  cp = c;
  pos += len;
  return true;
}

size_t complete_utf8_prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(bytes[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead
    const size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

size_t find_invalid_utf8(std::string_view s) {
  size_t pos = 0;
  char32_t cp;
  while (pos < s.size()) {
    // ASCII dominates real text; skip it without the full decoder.
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    if (!decode_utf8(s, pos, cp)) return pos;
  }
  return std::string_view::npos;
}

void check_utf8(std::string_view s, const std::string& what, size_t base_offset) {
  const size_t bad = find_invalid_utf8(s);
  if (bad == std::string_view::npos) return;
  std::string bytes;
  for (size_t i = bad; i < s.size() && i < bad + 4; ++i) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%s0x%02X", i == bad ? "" : " ", static_cast<unsigned char>(s[i]));
    bytes += buf;
  }
  throw DataError(located(what, "invalid UTF-8 at byte offset " + std::to_string(base_offset + bad) +
                                    " (bytes " + bytes + ")",
                          "the input must be UTF-8 encoded"));
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_utf8(out, cp);
  return out;
}

bool is_whitespace(char32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_control(char32_t cp) {
  if (cp < 0x80) return cp != '\t' && cp != '\n' && cp != '\r' && (cp < 0x20 || cp == 0x7F);
  if (const Override* o = find_range(kControlOverrides, cp)) return o->value;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

bool is_punctuation(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  }
  if (const Override* o = find_range(kPunctuationOverrides, cp)) return o->value;
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_nonspacing_mark(char32_t cp) {
  if (cp < 0x300) return false;
  if (const Override* o = find_range(kMarkOverrides, cp)) return o->value;
  return category(cp) == UTF8PROC_CATEGORY_MN;
}

bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_lowercase(std::u32string& out, char32_t cp) {
  if (cp < 0x80) {
    out += (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return;
  }
  // The one unconditional multi-character lowercase mapping in SpecialCasing.txt; utf8proc only
  // has the simple (one code point) mappings.
  if (cp == 0x130) {
    out += U'i';
    out += char32_t{0x307};
    return;
  }
  if (const CaseRange* r = find_range(kLowercaseOverrides, cp)) {
    out += static_cast<char32_t>(static_cast<int32_t>(cp) + r->delta);
    return;
  }
  out += static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

void append_nfd(std::u32string& out, char32_t cp) {
  if (cp < 0xC0 || cp == kNoDecomposition) {  // nothing below U+00C0 decomposes canonically
    out += cp;
    return;
  }
  utf8proc_int32_t buf[8];
  int boundclass = 0;
  auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 8, UTF8PROC_DECOMPOSE, &boundclass);
  if (n < 0 || n > 8) {  // cannot happen for canonical decompositions (at most 4); keep the char
    out += cp;
    return;
  }
  for (utf8proc_ssize_t i = 0; i < n; ++i) out += static_cast<char32_t>(buf[i]);
}

void canonical_order(std::u32string& s, size_t from) {
  auto ccc = [](char32_t cp) -> int {
    if (cp < 0x300 || find_range(kNoCombiningClass, cp)) return 0;
    return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
  };
  size_t i = from;
  while (i < s.size()) {
    if (ccc(s[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && ccc(s[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(s.begin() + static_cast<long>(i), s.begin() + static_cast<long>(j),
                       [&](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    }
    i = j;
  }
}

}  // namespace kd::unicode
