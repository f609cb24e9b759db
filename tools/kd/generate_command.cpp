// kd generate --model FILE.gguf --prompt TEXT
// Continues a prompt with a causal LM (a LLaMA-family GGUF file and the tokenizer in its metadata),
// printing text to stdout as each token is chosen. Greedy by default; --temperature > 0 samples, after
// the top-k and top-p filters, from a generator seeded by --seed. Stops at the end-of-sequence token
// unless --ignore-eos. Timing goes to stderr.
#include <chrono>
#include <iostream>

#include "command.h"
#include "kd/error.h"
#include "kd/io/gguf.h"
#include "kd/models/llama.h"
#include "kd/text/bpe_tokenizer.h"
#include "kd/text/unicode.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

// Length of the longest prefix of `bytes` that does not end inside a UTF-8 character, so that
// streamed output never splits one (the rest waits for the next token).
size_t complete_utf8_prefix(const std::string& bytes) {
  size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(bytes[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead
    const size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

class GenerateCommand : public Command {
 public:
  std::string name() const override { return "generate"; }
  std::string help() const override { return "continue a prompt with a causal LM (GGUF), streaming the text"; }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "LLaMA-family GGUF file (its tokenizer is read from the metadata)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("-p,--prompt", prompt_, "text to continue")->required();
    app.add_flag("--chat", chat_, "wrap the prompt as one user turn in the ChatML template (<|im_start|>...)");
    app.add_option("-n,--max-new-tokens", o_.max_new_tokens, "tokens to generate at most")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--temperature", o_.temperature, "0: greedy; > 0: sample from softmax(logits / T)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--top-k", o_.top_k, "sample among the k most likely tokens (0: all)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--top-p", o_.top_p, "sample among the most likely tokens whose mass reaches p (1: all)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--seed", o_.seed, "seed of the sampling generator")->capture_default_str();
    app.add_flag("--ignore-eos", ignore_eos_, "keep going after the end-of-sequence token");
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    if (o_.top_p <= 0) throw ConfigError(located("--top-p", "must be in (0, 1]"));
    unicode::check_utf8(prompt_, "--prompt");
    const GgufFile file(model_);
    const auto tok = BpeTokenizer::from_gguf(file);
    auto model = load_llama_gguf(file);
    const std::string text =
        chat_ ? "<|im_start|>user\n" + prompt_ + "<|im_end|>\n<|im_start|>assistant\n" : prompt_;
    const auto ids = tok.encode(text);
    if (ids.empty()) throw ConfigError(located("--prompt", "is empty"));
    const int64_t context = model->options().max_position;
    if (static_cast<int64_t>(ids.size()) + o_.max_new_tokens > context)
      throw ConfigError(located("--prompt", std::to_string(ids.size()) + " prompt tokens + " +
                                                std::to_string(o_.max_new_tokens) + " new ones exceed the context of " +
                                                std::to_string(context) + " tokens",
                                "shorten the prompt or lower --max-new-tokens"));
    o_.eos_id = ignore_eos_ ? -1 : tok.eos_id;

    std::string pending;  // bytes of an unfinished UTF-8 character
    const auto start = std::chrono::steady_clock::now();
    double first_s = 0;
    int64_t count = 0;
    model->generate(ids, o_, [&](int64_t id) {
      if (count++ == 0) first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (id == o_.eos_id) return true;
      pending += tok.token_bytes(id);
      const size_t n = complete_utf8_prefix(pending);
      std::cout << utf8_lossy(pending.substr(0, n)) << std::flush;
      pending.erase(0, n);
      return true;
    });
    std::cout << utf8_lossy(pending) << "\n" << std::flush;
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log_info(strf("%zu prompt tokens in %.2f s (%.1f tokens/s); %lld new tokens, %.1f tokens/s after the first",
                  ids.size(), first_s, first_s > 0 ? ids.size() / first_s : 0.0, static_cast<long long>(count),
                  count > 1 ? (count - 1) / (total_s - first_s) : 0.0));
    return 0;
  }

 private:
  std::string model_, prompt_;
  bool chat_ = false, ignore_eos_ = false;
  GenerateOptions o_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_generate_command() { return std::make_unique<GenerateCommand>(); }

}  // namespace kd::cli
