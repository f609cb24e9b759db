// kd serve --model PATH [--port N]
// Serves a classifier folder or a causal LM (GGUF file or Hugging Face folder) over HTTP with JSON; see
// kd/serve/server.h for the routes. Prints "listening on http://HOST:PORT" on stdout once it accepts
// connections. SIGTERM or SIGINT drains: no new connections, requests already accepted are answered,
// then exit 0.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "command.h"
#include "kd/serve/server.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

class ServeCommand : public Command {
 public:
  std::string name() const override { return "serve"; }
  std::string help() const override { return "serve a model over HTTP: /v1/classify, /v1/completions, /metrics"; }

  void add_options(CLI::App& app) override {
    auto& o = o_;
    app.add_option("-m,--model", model_, "classifier folder, or causal LM (GGUF file or Hugging Face folder)")
        ->required()
        ->check(CLI::ExistingPath);
    app.add_option("--host", o.host, "address to listen on")->capture_default_str();
    app.add_option("--port", o.port, "port (0: any free port)")->capture_default_str();
    app.add_option("--max-batch", o.batching.max_batch, "classifier rows per forward pass (1: no batching)")
        ->capture_default_str();
    app.add_option("--batch-wait-ms", o.batching.max_wait_ms,
                   "how long a request waits for others to share its batch")
        ->capture_default_str();
    app.add_option("--max-queue", o.batching.max_queue, "classifier rows queued before 503")->capture_default_str();
    app.add_option("--max-body-bytes", o.max_body_bytes, "request body size limit (413 above)")
        ->capture_default_str();
    app.add_option("--max-texts", o.max_texts, "texts per classify request")->capture_default_str();
    app.add_option("--max-tokens", o.max_tokens, "largest max_tokens a completion may ask for")
        ->capture_default_str();
    app.add_option("--request-timeout", o.request_timeout_s, "seconds a request may wait for its answer (504)")
        ->capture_default_str();
    app.add_option("--http-threads", o.http_threads, "connections served at once")->capture_default_str();
    app.add_option("--completion-queue", o.completion_queue, "completions waiting for the model before 503")
        ->capture_default_str();
    common_.add_to(app);
  }

  int run() override {
    // Every thread started from here on (LibTorch's intra-op pool, the batcher, the HTTP workers)
    // inherits the blocked mask, so the signals reach only the waiter below, which can call stop()
    // safely (a handler could not). Blocked before common_.apply(), which starts the intra-op threads:
    // one of them left unblocked would take SIGTERM's default action and kill the process mid-request.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    common_.apply();

    serve::Server server(model_, o_, common_.device);
    const int port = server.bind();
    std::atomic<bool> done{false};
    std::thread waiter([&] {
      const timespec tick{0, 200 * 1000 * 1000};
      while (!done) {
        const int sig = sigtimedwait(&signals, nullptr, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
          log_info(strf("serve: %s received; answering the requests already accepted, then exiting",
                        sig == SIGTERM ? "SIGTERM" : "SIGINT"));
          // stop() does nothing before listen() runs: a signal that lands between bind() and listen()
          // waits for it (once, since a second stop() during the drain is not allowed).
          while (!done && !server.running()) nanosleep(&tick, nullptr);
          if (!done) server.stop();
          return;
        }
      }
    });
    std::printf("kd serve: %s %s listening on http://%s:%d\n", server.kind().c_str(), model_.c_str(), o_.host.c_str(),
                port);
    std::fflush(stdout);
    server.listen();
    done = true;
    waiter.join();
    log_info("serve: stopped");
    return 0;
  }

 private:
  std::string model_;
  serve::ServeOptions o_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_serve_command() { return std::make_unique<ServeCommand>(); }

}  // namespace kd::cli
