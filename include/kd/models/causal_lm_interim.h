// INTERIM: saving a causal LM folder until save_causal_lm (causal_lm.h) is implemented. Writes
// config.json + model.safetensors (Hugging Face names, float32) and records `tokenizer_source` (the
// GGUF file the tokenizer came from) in config.json as "kd_tokenizer_source"; load_causal_lm reads
// the folder back with that tokenizer.
#pragma once

#include <string>

#include "kd/models/causal_lm.h"

namespace kd {

void save_causal_lm_interim(const Llama& model, const BpeTokenizer& tokenizer, const std::string& tokenizer_source,
                            const std::string& dir);

}  // namespace kd
