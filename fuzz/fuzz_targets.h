// Fuzz targets of kd's readers of untrusted bytes. Each takes one input, runs it through the reader and
// whatever uses the result, and returns 0. Bad input must only ever throw a kd::Error subclass, which
// the target catches; anything else (another exception, a crash, a sanitizer report) is a bug. A
// broken invariant (decode(encode(text)) != text, ...) is thrown as std::logic_error.
//
// Built two ways: with KD_FUZZ_ENTRY each file also defines LLVMFuzzerTestOneInput for a libFuzzer
// binary (CMake option KD_BUILD_FUZZ, clang); without it the functions are linked into kd_tests,
// where FuzzDriverTest runs them over a fixed set of mutated inputs (see fuzz/README.md).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kd::fuzz {

// The bytes as a GGUF file: metadata getters, every tensor, the tokenizer and the LLaMA model.
int gguf_input(const uint8_t* data, size_t size);
// The bytes as text for a fixed small BPE tokenizer (encode/decode round trip, pre-tokenizer pieces,
// decoding of arbitrary ids), and as merge lines for a tokenizer built from them.
int bpe_tokenizer_input(const uint8_t* data, size_t size);
// The bytes as a tokenizer.json; what loads is written back and read again.
int tokenizer_json_input(const uint8_t* data, size_t size);

}  // namespace kd::fuzz
