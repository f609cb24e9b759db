// A tiny byte-level BPE tokenizer for tests: every single-byte token (ids 0..255 in byte order), one
// token per merge in rank order, then `extra` tokens of the given types.
#pragma once

#include <string>
#include <vector>

#include "kd/text/bpe_tokenizer.h"
#include "kd/text/unicode.h"

namespace kd::test {

inline BpeTokenizer tiny_bpe(const std::vector<std::string>& merges, std::vector<std::string> extra = {},
                             std::vector<BpeTokenType> extra_types = {},
                             BpePreTokenizer pre = BpePreTokenizer::Gpt2) {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) {
    tokens.emplace_back();
    unicode::append_utf8(tokens.back(), gpt2_byte_to_unicode(static_cast<uint8_t>(b)));
  }
  std::vector<BpeTokenType> types(256, BpeTokenType::Normal);
  for (const auto& m : merges) {
    const auto sp = m.find(' ');
    tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
    types.push_back(BpeTokenType::Normal);
  }
  for (size_t i = 0; i < extra.size(); ++i) {
    tokens.push_back(extra[i]);
    types.push_back(extra_types[i]);
  }
  return BpeTokenizer(tokens, merges, types, pre, "tiny");
}

}  // namespace kd::test
