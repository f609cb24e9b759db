#include <string>

#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/text/bpe_tokenizer.h"
#include "kd/text/unicode.h"

namespace kd::fuzz {

namespace {

std::string byte_token(int b) {
  std::string s;
  unicode::append_utf8(s, gpt2_byte_to_unicode(static_cast<uint8_t>(b)));
  return s;
}

// Every single-byte token, the given merges' results, and two special tokens.
BpeTokenizer make_tokenizer(const std::vector<std::string>& merges, BpePreTokenizer pre) {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_token(b));
  for (const auto& m : merges) {
    const auto sp = m.find(' ');
    if (sp != std::string::npos) tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
  }
  std::vector<BpeTokenType> types(tokens.size(), BpeTokenType::Normal);
  tokens.push_back("<|s|>");
  types.push_back(BpeTokenType::Control);
  tokens.push_back("<|u");
  types.push_back(BpeTokenType::UserDefined);
  return BpeTokenizer(tokens, merges, types, pre, "fuzz");
}

void check_round_trip(const BpeTokenizer& tok, std::string_view text) {
  for (const bool special : {true, false}) {
    const auto ids = tok.encode(text, special);
    if (tok.decode(ids) != text) throw std::logic_error("bpe: decode(encode(text)) differs from the text");
  }
  std::string joined;
  for (auto piece : bpe_pre_tokenize(text, tok.pre_tokenizer())) joined += piece;
  if (joined != text) throw std::logic_error("bpe: pre-tokenizer pieces do not cover the text");
}

}  // namespace

int bpe_tokenizer_input(const uint8_t* data, size_t size) {
  static const BpeTokenizer gpt2 = make_tokenizer({"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "1 2", "Ġ 1"}, BpePreTokenizer::Gpt2);
  static BpeTokenizer smollm = [] {
    BpeTokenizer t = gpt2;
    t.set_pre_tokenizer(BpePreTokenizer::SmolLM);
    return t;
  }();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (unicode::find_invalid_utf8(text) == std::string_view::npos) {
    check_round_trip(gpt2, text);
    check_round_trip(smollm, text);
  } else {
    try {
      gpt2.encode(text);
      throw std::logic_error("bpe: invalid UTF-8 was encoded");
    } catch (const DataError&) {
    }
  }
  // Decoding arbitrary ids (two bytes each, some outside the vocabulary) gives valid UTF-8.
  std::vector<int64_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) ids.push_back((data[i] | (data[i + 1] << 8)) % 300);
  try {
    const auto s = gpt2.decode(ids, size % 2 == 1);
    if (unicode::find_invalid_utf8(s) != std::string::npos) throw std::logic_error("bpe: decode gave invalid UTF-8");
  } catch (const Error&) {
  }
  // The bytes as merge lines over the byte vocabulary.
  std::vector<std::string> merges;
  size_t start = 0;
  for (size_t i = 0; i <= size && merges.size() < 64; ++i)
    if (i == size || data[i] == '\n') {
      merges.emplace_back(text.substr(start, i - start));
      start = i + 1;
    }
  try {
    const auto tok = make_tokenizer(merges, size % 2 ? BpePreTokenizer::SmolLM : BpePreTokenizer::Gpt2);
    for (const auto& m : merges)
      if (unicode::find_invalid_utf8(m) == std::string::npos) check_round_trip(tok, m);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::bpe_tokenizer_input(data, size);
}
#endif
