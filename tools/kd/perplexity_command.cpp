// kd perplexity --model PATH --data FILE [--max-tokens N] [--seq-len T]
// Perplexity of a causal LM (GGUF file or model folder) on a text file, with a tokens/s progress bar.
#include <iostream>

#include "command.h"
#include "kd/data/token_stream.h"
#include "kd/eval/perplexity.h"
#include "kd/models/causal_lm.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

class PerplexityCommand : public Command {
 public:
  std::string name() const override { return "perplexity"; }
  std::string help() const override { return "perplexity of a causal LM on a text file (non-overlapping windows)"; }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "GGUF file or model folder")->required()->check(CLI::ExistingPath);
    app.add_option("-d,--data", data_, "text file (e.g. wiki.test.tokens)")->required()->check(CLI::ExistingFile);
    app.add_option("--max-tokens", max_tokens_, "score only the first N tokens (0: all)")->capture_default_str();
    app.add_option("--seq-len", options_.seq_len, "window length in tokens")->capture_default_str();
    app.add_option("--batch-size", options_.batch_size, "windows per forward pass")->capture_default_str();
    app.add_option("--chunk", options_.chunk, "tokens per chunk of logits")->capture_default_str();
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    common_.require_cpu(name());
    options_.progress = !common_.no_progress;
    auto lm = load_causal_lm(model_);
    const auto stream = tokenize_text_file(data_, lm.tokenizer, max_tokens_, options_.progress);
    const auto r = evaluate_perplexity(lm.model, stream, options_);
    std::cout << strf("perplexity %.4f over %lld scored tokens (%lld tokens, windows of %lld), %.0f tokens/s, %d threads\n",
                      r.perplexity, static_cast<long long>(r.scored_tokens), static_cast<long long>(r.input_tokens),
                      static_cast<long long>(options_.seq_len), r.tokens_per_second, torch::get_num_threads());
    return 0;
  }

 private:
  std::string model_, data_;
  int64_t max_tokens_ = 0;
  PerplexityOptions options_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_perplexity_command() { return std::make_unique<PerplexityCommand>(); }

}  // namespace kd::cli
