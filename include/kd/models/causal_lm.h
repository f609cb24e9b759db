// A causal language model together with the tokenizer it was trained with: what `kd generate`, the
// language-model distillation commands and perplexity evaluation load and save. A teacher usually
// comes as a GGUF file; students are written as Hugging Face LLaMA folders, which transformers reads too.
#pragma once

#include <string>

#include "kd/models/llama.h"
#include "kd/text/bpe_tokenizer.h"

namespace kd {

struct CausalLm {
  Llama model;
  BpeTokenizer tokenizer;
  std::string source;  // the file or folder it was loaded from
};

// `path` is a GGUF file (*.gguf) or a Hugging Face LLaMA folder: config.json (LlamaConfig keys:
// vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings,
// bos/eos/pad_token_id), model.safetensors (F32/F16/BF16, Hugging Face tensor names such as
// model.layers.3.self_attn.q_proj.weight) and tokenizer.json. FormatError naming the file and the
// key or tensor for anything missing or inconsistent.
CausalLm load_causal_lm(const std::string& path);

// Whether `path` names a causal LM rather than a classifier: a *.gguf file, or a folder whose config.json
// says model_type "llama". Reads nothing else and never throws (a malformed config.json reads as not an LM,
// and the classifier loader then reports it).
bool is_causal_lm_path(const std::string& path);

// Writes `dir` as a Hugging Face LLaMA folder (float32 weights, config.json, tokenizer.json) that
// load_causal_lm and transformers' LlamaForCausalLM / AutoTokenizer both read. Written into a
// temporary folder next to `dir` and renamed, so a failure never leaves a half-written folder.
void save_causal_lm(const Llama& model, const BpeTokenizer& tokenizer, const std::string& dir);

}  // namespace kd
