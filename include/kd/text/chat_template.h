// The prompt text for one user turn of a chat model, laid out as the tokenizer's chat template says.
//
// Chat templates are Jinja programs; kd does not run them. It recognises the ChatML layout
// ("<|im_start|>role\n...<|im_end|>\n", SmolLM2, Qwen and others) and the default system turn such a
// template inserts when the conversation has none, which covers the models kd distils.
#pragma once

#include <string>

#include "kd/text/bpe_tokenizer.h"

namespace kd {

// [default system turn] + user turn + "<|im_start|>assistant\n" (the generation prompt). ConfigError
// when the tokenizer has no chat template or one that is not ChatML.
std::string chat_prompt(const BpeTokenizer& tokenizer, const std::string& user_message);

}  // namespace kd
