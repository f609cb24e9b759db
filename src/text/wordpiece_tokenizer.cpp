#include "kd/text/wordpiece_tokenizer.h"

#include <algorithm>
#include <cstdint>

#include "kd/error.h"
#include "kd/text/unicode.h"

namespace kd {

// Per-thread buffers, so tokenizing a sentence allocates only until the buffers have grown.
struct WordPieceTokenizer::Scratch {
  std::u32string normalized, decomposed;
  std::string word, piece;
  std::vector<size_t> bounds;  // byte offset of each character of `word`, plus its end
};

WordPieceTokenizer::Scratch& WordPieceTokenizer::thread_scratch() {
  thread_local Scratch s;
  return s;
}

namespace {

// BertPreTokenizer: whitespace separates words and is dropped; each punctuation character is a
// word of its own. Calls fn(word) for each word.
template <typename Fn>
void for_each_word(std::u32string_view text, Fn&& fn) {
  size_t i = 0;
  while (i < text.size()) {
    const char32_t c = text[i];
    if (unicode::is_whitespace(c)) {
      ++i;
    } else if (unicode::is_punctuation(c)) {
      fn(text.substr(i, 1));
      ++i;
    } else {
      size_t j = i + 1;
      while (j < text.size() && !unicode::is_whitespace(text[j]) && !unicode::is_punctuation(text[j])) ++j;
      fn(text.substr(i, j - i));
      i = j;
    }
  }
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  index_.reserve(vocab_.size());
  // A token listed twice maps to its last line, as in Hugging Face's load_vocab.
  for (size_t i = 0; i < vocab_.size(); ++i) {
    index_[vocab_[i]] = static_cast<int64_t>(i);
    max_token_bytes_ = std::max(max_token_bytes_, vocab_[i].size());
  }
  auto required = [&](const std::string& token, const char* role) {
    auto it = index_.find(token);
    if (it == index_.end()) {
      throw FormatError(std::string("tokenizer vocabulary has no ") + role + " token '" + token + "'");
    }
    return it->second;
  };
  unk_id_ = required(options_.unk_token, "unknown");
  cls_id_ = required(options_.cls_token, "classifier");
  sep_id_ = required(options_.sep_token, "separator");
  pad_id_ = required(options_.pad_token, "padding");
  if (options_.max_input_chars_per_word < 0) throw ConfigError("max_input_chars_per_word must be >= 0");
  for (const std::string* t : {&options_.pad_token, &options_.unk_token, &options_.cls_token, &options_.sep_token,
                               &options_.mask_token}) {
    auto it = index_.find(*t);
    if (!t->empty() && it != index_.end()) specials_.emplace_back(*t, it->second);
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

void WordPieceTokenizer::normalize(std::string_view text, size_t offset, Scratch& s) const {
  // Hugging Face's BertNormalizer order: clean text, space out CJK, strip accents, lowercase.
  const bool strip = options_.strip_accents.value_or(options_.lowercase);
  const bool lower = options_.lowercase;
  std::u32string& out = s.normalized;
  std::u32string& stage = strip ? s.decomposed : s.normalized;
  out.clear();
  stage.clear();
  auto emit = [&](char32_t cp) {
    if (strip) {
      unicode::append_nfd(stage, cp);
    } else if (lower) {
      unicode::append_lowercase(out, cp);
    } else {
      out += cp;
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t cp;
    if (!unicode::decode_utf8(text, pos, cp)) {
      unicode::check_utf8(text, "text", offset);  // throws, naming the byte offset
      throw DataError("text: invalid UTF-8");
    }
    if (options_.clean_text) {
      if (cp == 0 || cp == 0xFFFD || unicode::is_control(cp)) continue;
      if (unicode::is_whitespace(cp)) cp = U' ';
    }
    if (options_.tokenize_chinese_chars && unicode::is_cjk_ideograph(cp)) {
      emit(U' ');
      emit(cp);
      emit(U' ');
    } else {
      emit(cp);
    }
  }
  if (!strip) return;
  unicode::canonical_order(stage);
  for (char32_t cp : stage) {
    if (unicode::is_nonspacing_mark(cp)) continue;
    if (lower) {
      unicode::append_lowercase(out, cp);
    } else {
      out += cp;
    }
  }
}

void WordPieceTokenizer::append_word_pieces(std::u32string_view word, Scratch& s, std::vector<int64_t>& ids) const {
  if (word.size() > static_cast<size_t>(options_.max_input_chars_per_word)) {
    ids.push_back(unk_id_);
    return;
  }
  s.word.clear();
  s.bounds.clear();
  for (char32_t cp : word) {
    s.bounds.push_back(s.word.size());
    unicode::append_utf8(s.word, cp);
  }
  s.bounds.push_back(s.word.size());

  // Greedy longest-match-first; if any position cannot be matched the whole word is [UNK].
  const size_t first = ids.size();
  const std::string& prefix = options_.continuation_prefix;
  size_t start = 0;
  while (start < word.size()) {
    const size_t prefix_len = start > 0 ? prefix.size() : 0;
    size_t end = word.size();
    while (end > start && s.bounds[end] - s.bounds[start] + prefix_len > max_token_bytes_) --end;
    int64_t found = -1;
    for (; end > start; --end) {
      s.piece.assign(prefix.data(), prefix_len);
      s.piece.append(s.word, s.bounds[start], s.bounds[end] - s.bounds[start]);
      auto it = index_.find(s.piece);
      if (it != index_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {
      ids.resize(first);
      ids.push_back(unk_id_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
}

void WordPieceTokenizer::append_ids(std::string_view text, std::vector<int64_t>& ids) const {
  Scratch& s = thread_scratch();
  auto run = [&](size_t from, size_t to) {
    if (from == to) return;
    normalize(text.substr(from, to - from), from, s);
    for_each_word(s.normalized, [&](std::u32string_view w) { append_word_pieces(w, s, ids); });
  };
  // Special tokens are matched in the raw text, leftmost first, longest first. A valid UTF-8
  // token cannot match inside a multi-byte character, so segments stay well formed.
  size_t segment = 0, pos = 0;
  while (pos < text.size()) {
    bool matched = false;
    for (const auto& [token, id] : specials_) {
      if (text[pos] == token[0] && text.compare(pos, token.size(), token) == 0) {
        run(segment, pos);
        ids.push_back(id);
        pos += token.size();
        segment = pos;
        matched = true;
        break;
      }
    }
    if (!matched) ++pos;
  }
  run(segment, text.size());
}

std::vector<int64_t> WordPieceTokenizer::tokenize_to_ids(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 4 + 4);
  append_ids(text, ids);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  for (int64_t id : tokenize_to_ids(text)) tokens.push_back(vocab_[static_cast<size_t>(id)]);
  return tokens;
}

std::vector<std::string> WordPieceTokenizer::pre_tokenize(std::string_view text) const {
  Scratch& s = thread_scratch();
  normalize(text, 0, s);
  std::vector<std::string> words;
  for_each_word(s.normalized, [&](std::u32string_view w) { words.push_back(unicode::to_utf8(w)); });
  return words;
}

Encoding WordPieceTokenizer::encode(std::string_view a, std::optional<std::string_view> b, int64_t max_length) const {
  // Hugging Face's __call__ tests the pair for truthiness, so "" is encoded as a single text.
  if (b && b->empty()) b.reset();
  std::vector<int64_t> ids_a = tokenize_to_ids(a), ids_b;
  if (b) ids_b = tokenize_to_ids(*b);
  if (max_length > 0) {
    const int64_t added = b ? 3 : 2;
    if (max_length < added) {
      throw ConfigError("max_length " + std::to_string(max_length) + " leaves no room for the " +
                        std::to_string(added) + " special tokens");
    }
    const size_t budget = static_cast<size_t>(max_length - added);
    if (!b) {
      if (ids_a.size() > budget) ids_a.resize(budget);
    } else if (ids_a.size() + ids_b.size() > budget) {
      // Hugging Face tokenizers' LongestFirst: if cutting the longer side down to what the shorter
      // leaves is enough, do that; otherwise the shorter gets budget / 2 and the longer the rest
      // (the second sequence on a tie). The slow Python tokenizer drops one token at a time and so
      // gives an odd budget's spare token to the first sequence instead.
      size_t n1 = ids_a.size(), n2 = ids_b.size();
      const bool swapped = n1 > n2;
      if (swapped) std::swap(n1, n2);
      n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
      if (n1 + n2 > budget) {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
      }
      if (swapped) std::swap(n1, n2);
      ids_a.resize(std::min(ids_a.size(), n1));
      ids_b.resize(std::min(ids_b.size(), n2));
    }
  }
  Encoding e;
  e.ids.reserve(ids_a.size() + ids_b.size() + 3);
  e.ids.push_back(cls_id_);
  e.ids.insert(e.ids.end(), ids_a.begin(), ids_a.end());
  e.ids.push_back(sep_id_);
  e.type_ids.assign(e.ids.size(), 0);
  if (b) {
    e.ids.insert(e.ids.end(), ids_b.begin(), ids_b.end());
    e.ids.push_back(sep_id_);
    e.type_ids.resize(e.ids.size(), 1);
  }
  return e;
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  auto it = index_.find(token);
  return it == index_.end() ? unk_id_ : it->second;
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw ConfigError("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                      std::to_string(vocab_size()) + ")");
  }
  return vocab_[static_cast<size_t>(id)];
}

}  // namespace kd
