#include <string>
#include <string_view>

#include "fuzz_files.h"
#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/text/wordpiece_tokenizer.h"

namespace kd::fuzz {

namespace {

// Encodes `text` alone and as a pair truncated to 8 tokens; every id must be in the vocabulary.
void encode_checked(const WordPieceTokenizer& tok, std::string_view text) {
  try {
    for (const Encoding& e : {tok.encode(text), tok.encode(text, std::string_view("a second text"), 8)}) {
      if (e.ids.size() < 2 || e.ids.size() != e.type_ids.size() || e.ids.front() != tok.cls_id())
        throw std::logic_error("wordpiece: an encoding is not [CLS] ... [SEP]");
      for (int64_t id : e.ids)
        if (id < 0 || id >= tok.vocab_size()) throw std::logic_error("wordpiece: id outside the vocabulary");
    }
    if (tok.encode(text, std::string_view("b"), 8).size() > 8)
      throw std::logic_error("wordpiece: a pair truncated to 8 tokens is longer");
    for (const auto& piece : tok.tokenize(text)) tok.token_to_id(piece);
  } catch (const Error&) {
  }
}

}  // namespace

int wordpiece_vocab_input(const uint8_t* data, size_t size) {
  static InputFile file("vocab.txt");
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  WordPieceOptions cased;
  cased.lowercase = false;
  cased.max_input_chars_per_word = 6;
  for (const WordPieceOptions& options : {WordPieceOptions{}, cased}) {
    try {
      const auto tok = WordPieceTokenizer::from_vocab_file(file.write(data, size), options);
      for (int64_t i = 0; i < tok.vocab_size(); ++i) tok.id_to_token(i);
      for (const char* text : {"Hello, world! unaffable running", "Café naïve 日本語 ½ [CLS] [MASK] x[SEP]y",
                               "##a ## #", "", "   \t\n"})
        encode_checked(tok, text);
      encode_checked(tok, input);
    } catch (const Error&) {
    }
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::wordpiece_vocab_input(data, size);
}
#endif
