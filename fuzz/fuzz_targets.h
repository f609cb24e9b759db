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
// The bytes as a safetensors file: header, metadata, every tensor loaded (int8 rows dequantized).
int safetensors_input(const uint8_t* data, size_t size);
// The bytes as a WordPiece vocab.txt (one token a line): fixed texts and the input itself encoded.
int wordpiece_vocab_input(const uint8_t* data, size_t size);
// The bytes as a YAML experiment config: typed getters on every key, resolved_yaml read back.
int config_yaml_input(const uint8_t* data, size_t size);
// The bytes as a TSV, a CSV and a JSONL table, each read with and without a header.
int table_reader_input(const uint8_t* data, size_t size);
// The bytes as a knowledge cache (CachedKnowledge::open_unchecked) and the logits of its rows; then the
// same file with its checksum recomputed, so that mutations reach the checks behind it.
int knowledge_cache_input(const uint8_t* data, size_t size);
// The bytes as an LM top-k cache opened with the key in its own header, and the targets of its windows;
// then with checksum and payload size recomputed.
int lm_topk_cache_input(const uint8_t* data, size_t size);
// The bytes as a feature cache opened with its own key, its logits and features of a few rows; then with
// the checksum recomputed.
int feature_cache_input(const uint8_t* data, size_t size);

}  // namespace kd::fuzz
