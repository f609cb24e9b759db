// kd generate --model PATH (--prompt TEXT | --prompts FILE --out FILE.jsonl)
// Continues prompts with a causal LM (a LLaMA-family GGUF file or Hugging Face folder, see
// load_causal_lm). With --prompt the text is streamed to stdout as each token is chosen; with
// --prompts every prompt's continuation is written as one JSON line {"prompt", "continuation", "ids",
// "finish"} (teacher outputs for sequence-level distillation). Greedy by default; --temperature > 0
// samples, after the top-k and top-p filters, from a generator seeded by --seed (each prompt starts
// from the same seed). Stops at the end-of-sequence token unless --ignore-eos. Speed goes to stderr.
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/models/causal_lm.h"
#include "kd/text/chat_template.h"
#include "kd/text/unicode.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Prompt texts of a --prompts file: a .jsonl file has one object {"prompt": ...} a line, any other
// file one prompt a line. Empty lines are skipped; `where` gets "file:line" for each prompt.
std::vector<std::string> read_prompts(const std::string& path, std::vector<std::string>& where) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(located(path, "cannot open the prompts file"));
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  std::vector<std::string> prompts;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string at = path + ":" + std::to_string(line_no);
    unicode::check_utf8(line, at);
    if (jsonl) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw FormatError(located(at, "invalid JSON", e.what()));
      }
      if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
        throw FormatError(located(at, "expected an object with a string \"prompt\""));
      line = j["prompt"].get<std::string>();
    }
    prompts.push_back(line);
    where.push_back(at);
  }
  if (prompts.empty()) throw DataError(located(path, "no prompts in the file"));
  return prompts;
}

class GenerateCommand : public Command {
 public:
  std::string name() const override { return "generate"; }
  std::string help() const override {
    return "continue a prompt with a causal LM (GGUF file or Hugging Face folder), streaming the text";
  }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "LLaMA-family GGUF file or Hugging Face folder (with its tokenizer)")
        ->required()
        ->check(CLI::ExistingPath);
    auto* prompt = app.add_option("-p,--prompt", prompt_, "text to continue (streamed to stdout)");
    auto* prompts = app.add_option("--prompts", prompts_file_,
                                   "file of prompts, one a line (or .jsonl lines {\"prompt\": ...}); needs --out")
                        ->check(CLI::ExistingFile);
    auto* out = app.add_option("-o,--out", out_, "with --prompts: JSON lines {prompt, continuation, ids, finish}");
    prompt->excludes(prompts);
    prompts->needs(out);
    out->needs(prompts);
    app.add_flag("--chat", chat_, "wrap each prompt as one user turn of the model's (ChatML) chat template");
    app.add_option("-n,--max-new-tokens", o_.max_new_tokens, "tokens to generate at most")
        ->capture_default_str()
        ->check(kNonNegative);
    app.add_option("--temperature", o_.temperature, "0: greedy; > 0: sample from softmax(logits / T)")
        ->capture_default_str()
        ->check(kNonNegative);
    app.add_option("--top-k", o_.top_k, "sample among the k most likely tokens (0: all)")
        ->capture_default_str()
        ->check(kNonNegative);
    app.add_option("--top-p", o_.top_p, "sample among the most likely tokens whose mass reaches p (1: all)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--seed", o_.seed, "seed of the sampling generator")->capture_default_str();
    app.add_flag("--ignore-eos", ignore_eos_, "keep going after the end-of-sequence token");
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    common_.require_cpu(name());
    if (prompt_.empty() == prompts_file_.empty())
      throw ConfigError(located("--prompt", "give either --prompt TEXT or --prompts FILE --out FILE"));
    // Written so that NaN fails too.
    if (!(o_.top_p > 0 && o_.top_p <= 1)) throw ConfigError(located("--top-p", "must be in (0, 1]"));
    if (!(o_.temperature >= 0) || !std::isfinite(o_.temperature))
      throw ConfigError(located("--temperature", "must be a finite number >= 0 (0: greedy)"));
    std::vector<std::string> texts, where;
    if (prompts_file_.empty()) {
      texts = {prompt_};
      where = {"--prompt"};
    } else {
      texts = read_prompts(prompts_file_, where);
    }
    for (size_t i = 0; i < texts.size(); ++i) unicode::check_utf8(texts[i], where[i]);

    CausalLm lm = load_causal_lm(model_);
    const int64_t context = lm.model->options().max_position;
    if (o_.max_new_tokens >= context)
      throw ConfigError(located("--max-new-tokens", std::to_string(o_.max_new_tokens) +
                                                        " new tokens leave no room for a prompt in the context of " +
                                                        std::to_string(context) + " tokens"));
    o_.eos_id = ignore_eos_ ? -1 : lm.tokenizer.eos_id;
    // Every prompt is checked before any generation starts.
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = 0; i < texts.size(); ++i) ids.push_back(encode(lm, texts[i], where[i], context));

    if (prompts_file_.empty()) {
      stream(lm, ids[0]);
    } else {
      std::string lines;
      for (size_t i = 0; i < texts.size(); ++i) {
        auto out = generate(lm, ids[i], {});
        const bool eos = !out.empty() && out.back() == o_.eos_id;
        if (eos) out.pop_back();
        nlohmann::json row = {{"prompt", texts[i]},
                              {"continuation", lm.tokenizer.decode(out)},
                              {"ids", out},
                              {"finish", eos ? "eos" : "length"}};
        lines += row.dump() + "\n";
        log_debug(strf("%s: %zu tokens", where[i].c_str(), out.size()));
      }
      write_file_atomic(out_, lines);
      log_info(strf("%zu continuations written to %s", texts.size(), out_.c_str()));
    }
    log_info(strf("prefill: %lld prompt tokens in %.2f s (%.1f tokens/s); generation: %lld new tokens in %.2f s "
                  "(%.1f tokens/s after each prompt's first)",
                  static_cast<long long>(prompt_tokens_), prefill_s_, prefill_s_ > 0 ? prompt_tokens_ / prefill_s_ : 0.0,
                  static_cast<long long>(new_tokens_), decode_s_,
                  decode_s_ > 0 ? decode_tokens_ / decode_s_ : 0.0));
    return 0;
  }

 private:
  std::vector<int64_t> encode(const CausalLm& lm, const std::string& text, const std::string& where,
                              int64_t context) const {
    const auto ids = lm.tokenizer.encode(chat_ ? chat_prompt(lm.tokenizer, text) : text);
    if (ids.empty()) throw DataError(located(where, "the prompt is empty"));
    const auto n = static_cast<int64_t>(ids.size());
    if (n + o_.max_new_tokens > context)
      throw DataError(located(where, "the prompt has " + std::to_string(n) + " tokens; with " +
                                         std::to_string(o_.max_new_tokens) + " new ones that exceeds the context of " +
                                         std::to_string(context) + " tokens",
                              "shorten the prompt or lower --max-new-tokens"));
    return ids;
  }

  // Generates one continuation, adding to the speed counters: the time to the first new token is the
  // prefill (one pass over the prompt), the rest is token-by-token decoding.
  std::vector<int64_t> generate(CausalLm& lm, const std::vector<int64_t>& ids,
                                const std::function<void(int64_t)>& on_token) {
    const auto start = Clock::now();
    Clock::time_point first;
    int64_t count = 0;
    auto out = lm.model->generate(ids, o_, [&](int64_t id) {
      if (count++ == 0) first = Clock::now();
      if (on_token) on_token(id);
      return true;
    });
    prompt_tokens_ += static_cast<int64_t>(ids.size());
    new_tokens_ += count;
    if (count > 0) {
      prefill_s_ += std::chrono::duration<double>(first - start).count();
      decode_s_ += seconds_since(first);
      decode_tokens_ += count - 1;
    }
    return out;
  }

  void stream(CausalLm& lm, const std::vector<int64_t>& ids) {
    std::string pending;  // bytes of an unfinished UTF-8 character
    generate(lm, ids, [&](int64_t id) {
      if (id == o_.eos_id) return;
      pending += lm.tokenizer.token_bytes(id);
      const size_t n = unicode::complete_utf8_prefix(pending);
      std::cout << utf8_lossy(std::string_view(pending).substr(0, n)) << std::flush;
      pending.erase(0, n);
    });
    std::cout << utf8_lossy(pending) << "\n" << std::flush;
  }

  std::string model_, prompt_, prompts_file_, out_;
  bool chat_ = false, ignore_eos_ = false;
  GenerateOptions o_;
  CommonOptions common_;
  int64_t prompt_tokens_ = 0, new_tokens_ = 0, decode_tokens_ = 0;
  double prefill_s_ = 0, decode_s_ = 0;
};

}  // namespace

std::unique_ptr<Command> make_generate_command() { return std::make_unique<GenerateCommand>(); }

}  // namespace kd::cli
