#include "kd/serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include "kd/error.h"
#include "kd/models/causal_lm.h"
#include "kd/models/classifier_registry.h"
#include "kd/serve/classify_service.h"
#include "kd/serve/completion_service.h"
#include "kd/serve/request_error.h"
#include "kd/serve/server_metrics.h"
#include "kd/util/device.h"
#include "kd/util/log.h"

namespace kd::serve {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void ServeOptions::check() const {
  auto positive = [](double v, const char* flag) {
    if (!(v > 0)) throw ConfigError(located(flag, "must be > 0, got " + std::to_string(v)));
  };
  if (port < 0 || port > 65535) throw ConfigError(located("--port", "must be in [0, 65535]"));
  if (host.empty()) throw ConfigError(located("--host", "is empty"));
  positive(static_cast<double>(batching.max_batch), "--max-batch");
  if (!(batching.max_wait_ms >= 0 && batching.max_wait_ms <= 1000))
    throw ConfigError(located("--batch-wait-ms", "must be in [0, 1000] ms"));
  positive(static_cast<double>(batching.max_queue), "--max-queue");
  positive(static_cast<double>(max_body_bytes), "--max-body-bytes");
  positive(static_cast<double>(max_texts), "--max-texts");
  positive(static_cast<double>(max_tokens), "--max-tokens");
  if (!(request_timeout_s > 0 && request_timeout_s <= 86400))
    throw ConfigError(located("--request-timeout", "must be in (0, 86400] seconds"));
  positive(static_cast<double>(http_threads), "--http-threads");
  positive(static_cast<double>(completion_queue), "--completion-queue");
}

std::string model_kind(const std::string& path) { return is_causal_lm_path(path) ? "causal-lm" : "classifier"; }

namespace {

const char* kJson = "application/json";

// Responses may carry text cut from a model's output; invalid UTF-8 there is replaced, not thrown.
std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "") {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "1");
  res.set_content(dump(error_json(status, message, param)), kJson);
}

nlohmann::json parse_body(const httplib::Request& req) {
  if (req.body.empty()) throw RequestError(400, "the body is empty; expected a JSON object");
  try {
    return nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, or out_of_range for a number beyond double (1e999). nlohmann's message names the byte
    // offset ("at line 1, column 9: ...") and invalid UTF-8.
    throw RequestError(400, std::string("the body is not valid JSON: ") + e.what());
  }
}

// cpp-httplib 0.11 listens with a backlog of 5 connections (a constant compiled into Debian's library):
// a burst of more new connections than that overflows the kernel's accept queue and some of them fail
// (seen as read errors in clients at concurrency 16). Linux lets listen() be called again on the bound
// socket to raise it.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) {
    if (::listen(svr_sock_.load(), backlog) != 0) log_warn("serve: could not raise the listen backlog");
  }
};

// The request's arrival, for the latency histogram: set when routing starts, read by the logger on the
// same worker thread. Requests refused before routing (an oversized body) have none and count as 0 s.
thread_local std::optional<Clock::time_point> t_arrival;

}  // namespace

struct Server::Impl {
  ServeOptions options;
  std::string name, kind;
  ServerMetrics metrics;
  std::unique_ptr<ClassifyService> classifier;
  std::unique_ptr<CompletionService> lm;
  HttpServer http;
  int port = -1;

  // A route served with `handler`; the other methods on its path answer 405.
  template <class Handler>
  void route(const std::string& method, const std::string& path, Handler handler) {
    auto wrapped = [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const RequestError& e) {
        send_error(res, e.status(), e.what(), e.param());
      } catch (const std::exception& e) {
        log_warn(strf("serve: %s %s failed: %s", req.method.c_str(), req.path.c_str(), e.what()));
        send_error(res, 500, std::string("internal error: ") + e.what());
      }
    };
    auto refuse = [method](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", method);
      send_error(res, 405, req.method + " is not allowed here; use " + method);
    };
    for (const std::string m : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
      const auto& h = m == method ? httplib::Server::Handler(wrapped) : httplib::Server::Handler(refuse);
      if (m == "GET") http.Get(path, h);
      if (m == "POST") http.Post(path, h);
      if (m == "PUT") http.Put(path, h);
      if (m == "PATCH") http.Patch(path, h);
      if (m == "DELETE") http.Delete(path, h);
    }
    known_routes.push_back(path);
  }
  std::vector<std::string> known_routes;

  std::string join_routes() const {
    std::string out;
    for (const auto& r : known_routes) out += (out.empty() ? "" : ", ") + r;
    return out;
  }

  std::string route_label(const std::string& path) const {
    for (const auto& r : known_routes)
      if (r == path) return r;
    return "other";  // bounded label values whatever clients send
  }

  void add_routes();
  void complete(const httplib::Request& req, httplib::Response& res);
};

void Server::Impl::add_routes() {
  route("GET", "/health", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump({{"status", "ok"}, {"model", name}, {"kind", kind}}), kJson);
  });
  route("GET", "/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.prometheus(), "text/plain; version=0.0.4");
  });
  route("POST", "/v1/classify", [this](const httplib::Request& req, httplib::Response& res) {
    if (!classifier)
      throw RequestError(404, "this server runs a causal LM (" + name + "); use POST /v1/completions");
    res.set_content(dump(classifier->classify(parse_body(req), options.max_texts, options.request_timeout_s)), kJson);
  });
  route("POST", "/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { complete(req, res); });
}

void Server::Impl::complete(const httplib::Request& req, httplib::Response& res) {
  if (!lm) throw RequestError(404, "this server runs a text classifier (" + name + "); use POST /v1/classify");
  const auto request = lm->parse(parse_body(req), options.max_tokens);
  auto turn = std::make_shared<std::unique_lock<std::timed_mutex>>(lm->wait_turn(options.request_timeout_s));
  if (!request.stream) {
    const auto result = lm->complete(request, [](const std::string&) { return true; });
    res.set_content(dump(lm->response_json(result)), kJson);
    return;
  }
  // The provider runs after this handler returns, on the same thread, and keeps the model's turn.
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [this, request, turn](size_t, httplib::DataSink& sink) {
    const std::string id = lm->next_id();
    auto event = [&](const nlohmann::json& j) {
      const std::string line = "data: " + dump(j) + "\n\n";
      return sink.write(line.data(), line.size());
    };
    try {
      const auto result = lm->complete(request, [&](const std::string& piece) { return event(lm->chunk_json(id, piece, "")); });
      event(lm->chunk_json(id, "", result.finish_reason));
      const std::string done = "data: [DONE]\n\n";
      sink.write(done.data(), done.size());
    } catch (const std::exception& e) {
      // Headers are gone already; the error travels as an event.
      event(error_json(500, std::string("internal error: ") + e.what()));
    }
    sink.done();
    turn->unlock();
    return true;
  });
}

Server::Server(const std::string& model_path, ServeOptions options, const std::string& device)
    : impl_(std::make_unique<Impl>()) {
  options.check();
  auto& s = *impl_;
  s.options = options;
  s.name = fs::path(model_path).filename().string();
  if (s.name.empty()) s.name = fs::path(model_path).parent_path().filename().string();
  s.kind = model_kind(model_path);
  if (s.kind == "causal-lm") {
    if (parse_device(device) != torch::Device(torch::kCPU))
      throw ConfigError(located("--device", "causal LMs are served on the CPU only"));
    s.lm = std::make_unique<CompletionService>(load_causal_lm(model_path), s.name, options.completion_queue);
    s.metrics.add_gauge("kd_queue_depth", "Requests waiting for the model.",
                        [lm = s.lm.get()] { return static_cast<double>(lm->waiting()); });
  } else {
    auto model = load_classifier(model_path);
    model->module().to(parse_device(device));
    model->module().eval();
    s.classifier = std::make_unique<ClassifyService>(std::move(model), s.name, options.batching, s.metrics);
    s.metrics.add_gauge("kd_queue_depth", "Rows waiting for the dynamic batcher.",
                        [c = s.classifier.get()] { return static_cast<double>(c->queued_rows()); });
  }

  auto& http = s.http;
  const auto threads = static_cast<size_t>(options.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  http.set_keep_alive_max_count(1000);
  // Without TCP_NODELAY a response written in two segments (headers, body) waits for the client's delayed
  // ACK: ~40 ms more per request (measured: 92 ms at concurrency 1 for a 1.5 ms forward pass).
  http.set_tcp_nodelay(true);
  http.set_read_timeout(static_cast<time_t>(std::max(1.0, options.request_timeout_s)));
  http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    t_arrival = Clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses httplib sets itself (404 unknown path, 413 body too large, 400 unreadable request) get a
  // JSON error body like every other.
  http.set_error_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "error";
    if (res.status == 404) message = "no route " + req.path + "; routes: " + s.join_routes();
    if (res.status == 413)
      message = "the body is larger than the server's limit of " + std::to_string(s.options.max_body_bytes) +
                " bytes";
    if (res.status == 400) message = "malformed HTTP request";
    send_error(res, res.status, message);
  });
  http.set_logger([&s](const httplib::Request& req, const httplib::Response& res) {
    const double seconds = t_arrival ? std::chrono::duration<double>(Clock::now() - *t_arrival).count() : 0.0;
    t_arrival.reset();
    s.metrics.record_request(s.route_label(req.path), res.status, seconds);
  });
  s.add_routes();
}

Server::~Server() = default;

int Server::bind() {
  auto& s = *impl_;
  const int port = s.options.port == 0 ? s.http.bind_to_any_port(s.options.host)
                                       : (s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (port < 0)
    throw IoError(located(s.options.host + ":" + std::to_string(s.options.port), "cannot listen on this address",
                          "is the port in use, or the host not an address of this machine?"));
  s.http.raise_backlog(1024);
  s.port = port;
  return port;
}

void Server::listen() {
  if (impl_->port < 0) bind();
  impl_->http.listen_after_bind();
}

void Server::stop() { impl_->http.stop(); }

bool Server::running() const { return impl_->http.is_running(); }

const std::string& Server::kind() const { return impl_->kind; }

}  // namespace kd::serve
