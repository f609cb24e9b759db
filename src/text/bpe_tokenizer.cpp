#include "kd/text/bpe_tokenizer.h"

#include <algorithm>
#include <queue>

#include "kd/error.h"
#include "kd/text/unicode.h"

namespace kd {

namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

}  // namespace

BpeTokenizer::BpeTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                           std::vector<BpeTokenType> types, BpePreTokenizer pre, const std::string& source)
    : tokens_(std::move(tokens)), types_(std::move(types)), pre_(pre), source_(source) {
  if (tokens_.empty()) throw FormatError(located(source_, "the vocabulary is empty"));
  if (types_.empty()) types_.assign(tokens_.size(), BpeTokenType::Normal);
  if (types_.size() != tokens_.size())
    throw FormatError(located(source_, std::to_string(types_.size()) + " token types for " +
                                           std::to_string(tokens_.size()) + " tokens"));
  ids_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    // A repeated string keeps its first id, as a vocabulary map built in order would.
    ids_.emplace(tokens_[i], static_cast<int32_t>(i));
    if (types_[i] == BpeTokenType::Control || types_[i] == BpeTokenType::UserDefined) {
      if (tokens_[i].empty()) continue;
      specials_.push_back(tokens_[i]);
      special_ids_.push_back(static_cast<int32_t>(i));
    }
  }
  byte_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, gpt2_byte_to_unicode(static_cast<uint8_t>(b)));
    auto it = ids_.find(s);
    if (it != ids_.end()) byte_ids_[b] = it->second;
  }
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const auto sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
      throw FormatError(located(source_, "merge " + std::to_string(r) + " '" + m + "' is not two tokens separated by one space"));
    const std::string left = m.substr(0, sp), right = m.substr(sp + 1);
    auto a = ids_.find(left), b = ids_.find(right), c = ids_.find(left + right);
    if (a == ids_.end() || b == ids_.end() || c == ids_.end())
      throw FormatError(located(source_, "merge " + std::to_string(r) + " '" + m + "' uses a token that is not in the vocabulary"));
    // The first (best-ranked) merge of a pair wins, as in the reference implementation's map.
    merges_.emplace(pair_key(a->second, b->second), Merge{static_cast<int32_t>(r), c->second});
  }
}

const std::string& BpeTokenizer::token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ConfigError(located(source_, "token id " + std::to_string(id) + " is outside the vocabulary of " +
                                           std::to_string(vocab_size())));
  return tokens_[static_cast<size_t>(id)];
}

std::optional<int64_t> BpeTokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

bool BpeTokenizer::is_special(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return false;
  const auto t = types_[static_cast<size_t>(id)];
  return t == BpeTokenType::Control || t == BpeTokenType::UserDefined;
}

BpeTokenType BpeTokenizer::token_type(int64_t id) const {
  token(id);  // range check
  return types_[static_cast<size_t>(id)];
}

std::vector<std::string> BpeTokenizer::merges() const {
  std::vector<std::pair<int32_t, uint64_t>> ranked;  // (rank, pair key)
  ranked.reserve(merges_.size());
  for (const auto& [key, m] : merges_) ranked.emplace_back(m.rank, key);
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> out;
  out.reserve(ranked.size());
  for (const auto& [rank, key] : ranked)
    out.push_back(tokens_[key >> 32] + " " + tokens_[key & 0xffffffffu]);
  return out;
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (auto piece : bpe_pre_tokenize(text, pre_)) out.emplace_back(piece);
  return out;
}

void BpeTokenizer::bpe(std::string_view piece, std::vector<int64_t>& out) const {
  // Symbols form a linked list over the piece's bytes; a queue holds candidate merges ordered by
  // rank, then position. Entries made stale by an earlier merge are recognised and dropped.
  struct Sym {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Sym> syms(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(piece[i])];
    if (id < 0)
      throw FormatError(located(source_, "the vocabulary has no token for byte " + std::to_string(static_cast<uint8_t>(piece[i]))));
    syms[i] = {id, static_cast<int32_t>(i) - 1, static_cast<int32_t>(i) + 1, true};
  }
  if (!syms.empty()) syms.back().next = -1;

  struct Cand {
    int32_t rank, pos, left, right, result;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t nx = syms[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(syms[pos].id, syms[nx].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, syms[pos].id, syms[nx].id, it->second.result});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push(i);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    Sym& l = syms[c.pos];
    if (!l.alive || l.next < 0 || l.id != c.left || syms[l.next].id != c.right) continue;
    Sym& r = syms[l.next];
    l.id = c.result;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.pos;
    push(l.prev);
    push(c.pos);
  }
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void BpeTokenizer::encode_ordinary(std::string_view text, std::vector<int64_t>& out) const {
  for (auto piece : bpe_pre_tokenize(text, pre_)) bpe(piece, out);
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text, bool parse_special) const {
  unicode::check_utf8(text);
  std::vector<int64_t> out;
  size_t start = 0;
  if (parse_special && !specials_.empty()) {
    // Leftmost match first; at one position the longest special token wins.
    bool first[256] = {};
    for (const auto& s : specials_) first[static_cast<uint8_t>(s[0])] = true;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!first[static_cast<uint8_t>(text[i])]) continue;
      size_t best = 0;
      int32_t best_id = -1;
      for (size_t k = 0; k < specials_.size(); ++k) {
        const auto& s = specials_[k];
        if (s.size() > best && text.compare(i, s.size(), s) == 0) {
          best = s.size();
          best_id = special_ids_[k];
        }
      }
      if (best_id < 0) continue;
      encode_ordinary(text.substr(start, i - start), out);
      out.push_back(best_id);
      start = i + best;
      i = start - 1;
    }
  }
  encode_ordinary(text.substr(start), out);
  return out;
}

std::string BpeTokenizer::token_bytes(int64_t id) const {
  const std::string& t = token(id);
  if (is_special(id)) return t;
  std::string bytes;
  size_t pos = 0;
  while (pos < t.size()) {
    char32_t cp;
    const int b = unicode::decode_utf8(t, pos, cp) ? gpt2_unicode_to_byte(cp) : -1;
    if (b < 0) return t;  // not a byte-level token: its text as it is (as the reference decoder does)
    bytes += static_cast<char>(b);
  }
  return bytes;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string bytes;
  for (auto id : ids) {
    if (skip_special && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  return utf8_lossy(bytes);
}

}  // namespace kd
