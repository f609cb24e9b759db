// `kd serve`: a model behind HTTP with JSON, on cpp-httplib (Debian's libcpp-httplib).
//
//   GET  /health          {"status": "ok", "model", "kind"}
//   GET  /metrics         Prometheus text (see server_metrics.h)
//   POST /v1/classify     text classifiers (see classify_service.h), through the dynamic batcher
//   POST /v1/completions  causal LMs, OpenAI completions shape, streaming with server-sent events
//                         (see completion_service.h)
//
// Every error is a JSON object naming the field (request_error.h) with a 4xx/5xx status; the server keeps
// serving. Limits: body bytes (413), texts per request, max_tokens, time per request (504), queued rows
// (503 with Retry-After). stop() drains: the listener closes, requests already accepted are answered,
// then listen() returns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kd/serve/dynamic_batcher.h"

namespace kd::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (bind() says which)
  BatchingOptions batching;            // classifiers; max_batch 1 turns batching off
  int64_t max_body_bytes = 1 << 20;    // larger bodies: 413
  int64_t max_texts = 64;              // texts per /v1/classify request
  int64_t max_tokens = 256;            // the largest max_tokens a completion may ask for
  double request_timeout_s = 30;       // from arrival to the answer (a stream's first byte)
  int64_t http_threads = 64;           // connections served at once; more wait for a free thread
  int64_t completion_queue = 64;       // completions waiting for the model before 503

  // ConfigError naming the flag (--max-batch, --batch-wait-ms, ...) for a value out of range.
  void check() const;
};

// "causal-lm" for a *.gguf file or a folder whose config.json says model_type "llama"; otherwise
// "classifier" (any folder load_classifier reads).
std::string model_kind(const std::string& path);

class Server {
 public:
  // Loads the model (errors as load_classifier / load_causal_lm throw them); classifiers go to `device`.
  Server(const std::string& model_path, ServeOptions options, const std::string& device = "cpu");
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port; returns the port. IoError naming the address when it cannot.
  int bind();
  // Serves until stop(); returns once the requests already accepted are answered.
  void listen();
  // From any thread (not from a signal handler), once, after listen() has started (see running()).
  void stop();
  bool running() const;  // listen() is accepting connections or draining

  const std::string& kind() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kd::serve
