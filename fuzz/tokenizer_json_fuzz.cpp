#include <string>

#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/text/bpe_tokenizer.h"

namespace kd::fuzz {

int tokenizer_json_input(const uint8_t* data, size_t size) {
  try {
    const auto tok = BpeTokenizer::from_tokenizer_json_text(std::string(reinterpret_cast<const char*>(data), size),
                                                            "fuzz.json");
    try {
      tok.decode(tok.encode("Hello, world 123"));
    } catch (const Error&) {
    }
    const auto again = BpeTokenizer::from_tokenizer_json_text(tok.to_tokenizer_json(), "written.json");
    if (again.vocab_size() != tok.vocab_size() || again.merges() != tok.merges() ||
        again.pre_tokenizer() != tok.pre_tokenizer())
      throw std::logic_error("tokenizer.json: what was written reads back as another tokenizer");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::tokenizer_json_input(data, size);
}
#endif
