#include "kd/serve/http_client.h"

#include <httplib.h>

namespace kd::serve {

struct HttpClient::Impl {
  httplib::Client client;
  Impl(const std::string& host, int port) : client(host, port) {}
};

HttpClient::HttpClient(const std::string& host, int port, double timeout_s)
    : impl_(std::make_unique<Impl>(host, port)) {
  const auto t = std::chrono::duration<double>(timeout_s);
  impl_->client.set_connection_timeout(t);
  impl_->client.set_read_timeout(t);
  impl_->client.set_write_timeout(t);
  impl_->client.set_keep_alive(true);
  impl_->client.set_tcp_nodelay(true);  // as the server: no wait for delayed ACKs between header and body
}

HttpClient::~HttpClient() = default;

HttpReply HttpClient::send(const std::string& method, const std::string& path, const std::string& body,
                           const std::string& content_type, const std::function<bool(const std::string&)>& on_chunk) {
  httplib::Request req;
  req.method = method;
  req.path = path;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req.body = body;
    req.set_header("Content-Type", content_type);
  }
  if (on_chunk)
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      return on_chunk(std::string(data, n));
    };
  HttpReply reply;
  auto result = impl_->client.send(req);
  if (!result) {
    reply.error = httplib::to_string(result.error());
    return reply;
  }
  reply.status = result->status;
  reply.body = result->body;
  for (const auto& [k, v] : result->headers) reply.headers[k] = v;
  return reply;
}

}  // namespace kd::serve
