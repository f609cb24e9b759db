// Exporting a causal LM as a llama.cpp GGUF file (`kd export --format gguf`), so that a student from
// `kd distill-lm` runs in llama.cpp and in everything built on it.
//
// The file is what llama.cpp's convert_hf_to_gguf.py writes for a LlamaForCausalLM:
//   general.architecture = "llama", general.type, general.name (the folder's name), general.file_type
//   (0 F32, 1 F16, 2 Q4_0, 7 Q8_0: llama.cpp's LLAMA_FTYPE_*), general.quantization_version = 2,
//   general.alignment = 32;
//   llama.block_count, context_length, embedding_length, feed_forward_length, attention.head_count,
//   attention.head_count_kv, rope.dimension_count, vocab_size (uint32), rope.freq_base and
//   attention.layer_norm_rms_epsilon (float32);
//   tokenizer.ggml.model = "gpt2" (byte-level BPE), pre ("smollm" or "gpt2"), tokens, token_type (int32),
//   merges, add_bos_token = add_space_prefix = false, bos/eos/padding_token_id where the tokenizer has
//   them, and tokenizer.chat_template where it has one;
//   tensors token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
//   ffn_up, ffn_down}, output_norm, and output unless the head is tied to the embedding, with the Q and
//   K rows in llama.cpp's interleaved rotary order (permute_rope_rows), which kd's loader undoes.
//
// Tensor types: the 2-D weights take the requested type. Two kinds stay F32 whatever the type: 1-D
// tensors (the RMSNorm weights), as llama.cpp's converter keeps them, and matrices whose rows are not a
// multiple of 32 long, which Q8_0/Q4_0 blocks cannot cover (ffn_down when the feed-forward width is not
// a multiple of 32, every matrix when the hidden width is not). llama.cpp's converter falls back to F16
// for the latter; F32 loses nothing and llama.cpp reads both. With --type f16 those stay F32 as well.
#pragma once

#include <string>
#include <vector>

#include "kd/io/gguf.h"
#include "kd/models/causal_lm.h"

namespace kd {

// The types `kd export --type` takes, lower-case as in llama.cpp's file names: f32, f16, q8_0, q4_0.
const std::vector<std::string>& gguf_export_type_names();
// One of those names to its type; ConfigError listing the known ones otherwise.
GgmlType parse_gguf_export_type(const std::string& name);

// Writes `lm` to `path` as described above, atomically. `name` becomes general.name. FormatError naming
// the tensor when a weight is not finite; IoError when `path` cannot be written.
void save_causal_lm_gguf(const CausalLm& lm, const std::string& path, GgmlType type, const std::string& name);

// Loads the causal LM at `model` (a Hugging Face LLaMA folder such as `kd distill-lm` writes, or a GGUF
// file) and writes it to `path`. Checked before anything is loaded: a folder that is another kind of
// model (a kd text classifier, a BERT checkpoint) is a ConfigError naming it and the kinds that can
// be exported; an output whose folder does not exist, or that is a folder, is an IoError. No file is
// left at `path` after any failure.
void export_causal_lm_gguf(const std::string& model, const std::string& path, GgmlType type);

}  // namespace kd
