#include "kd/text/chat_template.h"

#include "kd/error.h"

namespace kd {

namespace {

constexpr const char* kStart = "<|im_start|>";
constexpr const char* kEnd = "<|im_end|>";

// The default system message of a ChatML template: the text of the literal
// '<|im_start|>system\n...<|im_end|>' in the template source (the newline written as a newline or as
// the two characters \n), or "" when there is none.
std::string default_system(const std::string& t) {
  for (const std::string nl : {"\n", "\\n"}) {
    const std::string open = std::string(kStart) + "system" + nl;
    for (auto at = t.find(open); at != std::string::npos; at = t.find(open, at + 1)) {
      const auto from = at + open.size(), to = t.find(kEnd, from);
      // A system turn written from a variable ({{ messages[0]['content'] }}) is not a default.
      if (to == std::string::npos || t.find("{{", from) < to || t.find("{%", from) < to) continue;
      std::string text = t.substr(from, to - from);
      for (size_t p = 0; (p = text.find("\\n", p)) != std::string::npos;) text.replace(p, 2, "\n");
      return std::string(kStart) + "system\n" + text + kEnd + "\n";
    }
  }
  return "";
}

}  // namespace

std::string chat_prompt(const BpeTokenizer& tok, const std::string& user_message) {
  const std::string& t = tok.chat_template;
  if (t.empty()) throw ConfigError("chat: the model's tokenizer has no chat template");
  if (t.find(kStart) == std::string::npos || !tok.token_id(kStart) || !tok.token_id(kEnd))
    throw ConfigError("chat: only ChatML chat templates (<|im_start|>role ... <|im_end|>) are supported");
  return default_system(t) + kStart + "user\n" + user_message + kEnd + "\n" + kStart + "assistant\n";
}

}  // namespace kd
