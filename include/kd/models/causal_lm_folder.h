// The Hugging Face LLaMA folder layout that load_causal_lm reads and save_causal_lm writes: file names,
// tensor names, and LlamaOptions from / to config.json.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "kd/models/llama.h"

namespace kd {

inline constexpr const char* kHfConfigFile = "config.json";
inline constexpr const char* kHfWeightsFile = "model.safetensors";
inline constexpr const char* kHfTokenizerFile = "tokenizer.json";
inline constexpr const char* kHfTokenizerConfigFile = "tokenizer_config.json";
inline constexpr const char* kHfGenerationConfigFile = "generation_config.json";

// Hugging Face's name of a Llama parameter: "model." + the named_parameters() name, except lm_head.
std::string hf_tensor_name(const std::string& param);

// LlamaOptions from a LlamaConfig JSON object. vocab_size, hidden_size, intermediate_size,
// num_hidden_layers and num_attention_heads are required; the rest default as in transformers. A
// missing or mistyped key, or a feature kd does not run (biases, rope scaling, another activation or
// model type, a separate head_dim), is a FormatError naming `file` and the key.
LlamaOptions llama_options_from_config(const nlohmann::json& config, const std::string& file);

// The LlamaConfig keys of `o` (architectures, model_type, sizes, rope_theta, rms_norm_eps,
// tie_word_embeddings, ...); token ids of -1 are written as null.
nlohmann::json llama_config_json(const LlamaOptions& o, int64_t bos_id, int64_t eos_id, int64_t pad_id);

}  // namespace kd
