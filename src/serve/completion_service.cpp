#include "kd/serve/completion_service.h"

#include <chrono>
#include <ctime>
#include <limits>

#include "kd/serve/request_error.h"
#include "kd/text/unicode.h"

namespace kd::serve {

size_t stop_safe_length(const std::string& text, const std::vector<std::string>& stop) {
  size_t hold = 0;
  for (const auto& s : stop)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return text.size() - hold;
}

CompletionService::CompletionService(CausalLm lm, std::string name, int64_t max_queue)
    : lm_(std::move(lm)), name_(std::move(name)), max_queue_(max_queue) {
  lm_.model->eval();
}

CompletionRequest CompletionService::parse(const nlohmann::json& body, int64_t max_tokens) const {
  if (!body.is_object()) throw RequestError(400, "the body must be a JSON object with \"prompt\"");
  const auto* prompt = find_field(body, "prompt");
  if (!prompt) throw RequestError(400, "missing \"prompt\"", "prompt");
  std::string text;
  if (prompt->is_array()) {
    if (prompt->size() != 1) throw RequestError(400, "'prompt' must be one string (one prompt per request)", "prompt");
    text = text_value((*prompt)[0], "prompt[0]");
  } else {
    text = text_value(*prompt, "prompt");
  }
  CompletionRequest r;
  r.prompt_ids = lm_.tokenizer.encode(text);
  if (r.prompt_ids.empty()) throw RequestError(400, "'prompt' encodes to no tokens", "prompt");
  const int64_t context = lm_.model->options().max_position;
  auto& o = r.options;
  o.max_new_tokens = int_field(body, "max_tokens", 16, 1, max_tokens);
  const auto n = static_cast<int64_t>(r.prompt_ids.size());
  if (n + o.max_new_tokens > context)
    throw RequestError(400, "the prompt has " + std::to_string(n) + " tokens; with max_tokens " +
                                std::to_string(o.max_new_tokens) + " that exceeds the model's context of " +
                                std::to_string(context) + " tokens", "max_tokens");
  o.temperature = number_field(body, "temperature", 1.0, 0.0, 2.0);
  o.top_p = number_field(body, "top_p", 1.0, 0.0, 1.0);
  if (o.top_p == 0) throw RequestError(400, "'top_p' must be in (0, 1]", "top_p");
  o.top_k = int_field(body, "top_k", 0, 0, lm_.model->options().vocab_size);
  // Unseeded requests still differ from one another (as the API's are), from a counter.
  o.seed = static_cast<uint64_t>(
      int_field(body, "seed", static_cast<int64_t>(seeds_++), 0,
                std::numeric_limits<int64_t>::max()));
  o.eos_id = lm_.tokenizer.eos_id;
  if (const auto* stop = find_field(body, "stop")) {
    const nlohmann::json list = stop->is_array() ? *stop : nlohmann::json::array({*stop});
    if (list.size() > 4) throw RequestError(400, "'stop' holds at most 4 strings", "stop");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string at = "stop[" + std::to_string(i) + "]";
      if (!list[i].is_string() || list[i].get<std::string>().empty())
        throw RequestError(400, "'" + at + "' must be a non-empty string", at);
      r.stop.push_back(list[i].get<std::string>());
    }
  }
  r.stream = bool_field(body, "stream", false);
  return r;
}

std::unique_lock<std::timed_mutex> CompletionService::wait_turn(double timeout_s) {
  if (waiting_.fetch_add(1) >= max_queue_) {
    waiting_.fetch_sub(1);
    throw RequestError(503, "the server is busy (request queue full); retry shortly");
  }
  std::unique_lock<std::timed_mutex> turn(turn_, std::defer_lock);
  const bool got = turn.try_lock_for(std::chrono::duration<double>(timeout_s));
  waiting_.fetch_sub(1);
  if (!got)
    throw RequestError(504, "waited longer than the server's limit of " + std::to_string(timeout_s) +
                                " s for the model");
  return turn;
}

CompletionResult CompletionService::complete(const CompletionRequest& request,
                                             const std::function<bool(const std::string&)>& on_text) {
  torch::NoGradGuard no_grad;
  CompletionResult result;
  result.prompt_tokens = static_cast<int64_t>(request.prompt_ids.size());
  std::vector<int64_t> ids;
  size_t sent = 0;  // bytes of the decoded text already given to on_text
  bool stopped = false, aborted = false;
  std::string text;
  lm_.model->generate(request.prompt_ids, request.options, [&](int64_t id) {
    if (id == request.options.eos_id) {
      stopped = true;
      return false;
    }
    ids.push_back(id);
    text = lm_.tokenizer.decode(ids);
    size_t end = std::string::npos;
    for (const auto& s : request.stop) end = std::min(end, text.find(s));
    if (end != std::string::npos) {
      text.resize(end);
      stopped = true;
      return false;
    }
    const size_t ready = std::min(unicode::complete_utf8_prefix(text), stop_safe_length(text, request.stop));
    if (ready > sent) {
      if (!on_text(text.substr(sent, ready - sent))) {
        aborted = true;
        return false;
      }
      sent = ready;
    }
    return true;
  });
  result.completion_tokens = static_cast<int64_t>(ids.size());
  result.finish_reason = stopped ? "stop" : "length";
  if (!aborted && text.size() > sent) on_text(text.substr(sent));
  result.text = std::move(text);
  return result;
}

std::string CompletionService::next_id() const { return "cmpl-kd-" + std::to_string(ids_++); }

nlohmann::json CompletionService::response_json(const CompletionResult& r) const {
  nlohmann::json choice = {{"text", r.text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", r.finish_reason}};
  return {{"id", next_id()},
          {"object", "text_completion"},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", name_},
          {"choices", nlohmann::json::array({choice})},
          {"usage",
           {{"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"total_tokens", r.prompt_tokens + r.completion_tokens}}}};
}

nlohmann::json CompletionService::chunk_json(const std::string& id, const std::string& text,
                                             const std::string& finish_reason) const {
  nlohmann::json choice = {{"text", text},
                           {"index", 0},
                           {"logprobs", nullptr},
                           {"finish_reason", finish_reason.empty() ? nlohmann::json() : nlohmann::json(finish_reason)}};
  return {{"id", id},
          {"object", "text_completion"},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", name_},
          {"choices", nlohmann::json::array({choice})}};
}

}  // namespace kd::serve
