// A tiny causal LM saved as a Hugging Face LLaMA folder (as kd distill-lm saves students), for the GGUF
// export tests: the tiny LLaMA of tiny_llama.h (width 32, feed-forward 48: ffn_down's rows do not split
// into 32-element blocks) with a byte-level BPE tokenizer that has special tokens and a chat template.
#pragma once

#include <filesystem>
#include <string>

#include "kd/models/causal_lm.h"
#include "../text/tiny_bpe.h"
#include "tiny_llama.h"

namespace kd::test {

inline BpeTokenizer tiny_lm_tokenizer() {
  auto tok = tiny_bpe({"Ġ t", "h e", "Ġt he", "e r", "Ġ o"}, {"<|endoftext|>", "<|im_start|>", "<|im_end|>"},
                      {BpeTokenType::Control, BpeTokenType::Control, BpeTokenType::Control}, BpePreTokenizer::SmolLM);
  tok.bos_id = *tok.token_id("<|im_start|>");
  tok.eos_id = *tok.token_id("<|im_end|>");
  tok.pad_id = *tok.token_id("<|endoftext|>");
  tok.chat_template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";
  return tok;
}

// Writes the folder `dir` and returns its path.
inline std::string save_tiny_lm_folder(const std::filesystem::path& dir, bool tied = true, uint64_t seed = 5) {
  const auto tok = tiny_lm_tokenizer();
  auto o = tiny_llama_options(tok.vocab_size(), tied);
  o.rope_theta = 5000.0;
  save_causal_lm(tiny_llama(o, seed), tok, dir.string());
  return dir.string();
}

}  // namespace kd::test
