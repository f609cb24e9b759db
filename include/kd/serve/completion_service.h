// `POST /v1/completions` for a causal LM (a LLaMA-family GGUF file or Hugging Face folder), in the shape
// of the OpenAI completions API so that its clients work unchanged:
//
// Request:  {"prompt": "text", "max_tokens": 16, "temperature": 1, "top_p": 1, "stop": ["\n"],
//            "stream": false, "seed": 7}  (plus kd's "top_k"; "model" and unknown keys are ignored)
// Response: {"id", "object": "text_completion", "created", "model", "choices": [{"text", "index": 0,
//            "logprobs": null, "finish_reason": "stop" | "length"}], "usage": {"prompt_tokens",
//            "completion_tokens", "total_tokens"}}
// Streamed (server-sent events): one `data: {...}` chunk per piece of text, the last with its
// finish_reason, then `data: [DONE]`.
//
// One completion runs at a time: decoding is a chain of batch-1 steps whose matrix products already use
// every core, and the model's KV cache is per call. Requests wait their turn in a bounded queue.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "kd/models/causal_lm.h"

namespace kd::serve {

struct CompletionRequest {
  std::vector<int64_t> prompt_ids;
  GenerateOptions options;        // max_new_tokens, sampling, eos_id
  std::vector<std::string> stop;  // the text ends before the first of these
  bool stream = false;
};

struct CompletionResult {
  std::string text;
  std::string finish_reason;  // "stop" (end-of-sequence token or a stop string) or "length"
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

class CompletionService {
 public:
  CompletionService(CausalLm lm, std::string name, int64_t max_queue);

  // RequestError 400 naming the field: no prompt or not a string, max_tokens outside [1, max_tokens]
  // or past the context, temperature outside [0, 2], top_p outside (0, 1], a bad stop list.
  CompletionRequest parse(const nlohmann::json& body, int64_t max_tokens) const;

  // Waits for the model: RequestError 503 when `max_queue` requests wait already, 504 after `timeout_s`.
  // Hold the returned lock while calling complete().
  std::unique_lock<std::timed_mutex> wait_turn(double timeout_s);

  // Generates; `on_text` receives the text in order, in pieces that are final (no piece ends inside a
  // UTF-8 character or could be the start of a stop string). It returns false to abort (client gone).
  CompletionResult complete(const CompletionRequest& request, const std::function<bool(const std::string&)>& on_text);

  nlohmann::json response_json(const CompletionResult& result) const;
  // One streamed chunk: `text` and, on the last, the finish reason.
  nlohmann::json chunk_json(const std::string& id, const std::string& text, const std::string& finish_reason) const;
  std::string next_id() const;

  int64_t waiting() const { return waiting_.load(); }
  const std::string& name() const { return name_; }

 private:
  CausalLm lm_;
  std::string name_;
  int64_t max_queue_;
  std::timed_mutex turn_;
  std::atomic<int64_t> waiting_{0};
  mutable std::atomic<int64_t> ids_{0};     // completion ids
  mutable std::atomic<uint64_t> seeds_{0};  // seeds of unseeded requests
};

// Where a text may be cut for streaming: the length of its longest prefix that no stop string can still
// complete (a suffix that is a proper prefix of a stop string is held back).
size_t stop_safe_length(const std::string& text, const std::vector<std::string>& stop);

}  // namespace kd::serve
