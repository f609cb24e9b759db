#include <string>

#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/io/gguf.h"
#include "kd/models/llama.h"
#include "kd/text/bpe_tokenizer.h"

namespace kd::fuzz {

int gguf_input(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> f;
  try {
    f = GgufFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
  } catch (const Error&) {
    return 0;
  }
  for (const auto& key : f->keys()) {
    // Each getter either returns or refuses the type with a FormatError.
    try { f->get_int(key); } catch (const Error&) {}
    try { f->get_float(key); } catch (const Error&) {}
    try { f->get_string(key); } catch (const Error&) {}
    try { f->get_strings(key); } catch (const Error&) {}
    try { f->get_ints(key); } catch (const Error&) {}
    try { f->get_bool(key, false); } catch (const Error&) {}
  }
  for (const auto& t : f->tensors()) {
    const auto w = f->load(t.name);
    if (w.numel() != t.numel()) throw std::logic_error("gguf: tensor " + t.name + " loaded with the wrong size");
  }
  try {
    const auto tok = BpeTokenizer::from_gguf(*f);
    tok.decode(tok.encode("Hello, world 123 <|im_start|>"));
  } catch (const Error&) {
  }
  try {
    auto model = load_llama_gguf(*f);
    model->forward(torch::zeros({1, 2}, torch::kInt64));
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return kd::fuzz::gguf_input(data, size); }
#endif
