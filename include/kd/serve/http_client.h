// A small HTTP/1.1 client over cpp-httplib, for what talks to `kd serve` from C++: the end-to-end tests
// and the load benchmark. One object holds one keep-alive connection; use one per thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace kd::serve {

struct HttpReply {
  int status = 0;       // 0 when no response came (error says why)
  std::string body;     // empty when the body went to a chunk callback
  std::map<std::string, std::string> headers;
  std::string error;    // transport error ("Connection", "Read", ...) when status is 0
};

class HttpClient {
 public:
  HttpClient(const std::string& host, int port, double timeout_s = 60);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any method. With `on_chunk`, the body is handed over as it arrives (returning false stops reading).
  HttpReply send(const std::string& method, const std::string& path, const std::string& body = "",
                 const std::string& content_type = "application/json",
                 const std::function<bool(const std::string&)>& on_chunk = {});
  HttpReply get(const std::string& path) { return send("GET", path); }
  HttpReply post(const std::string& path, const std::string& body) { return send("POST", path, body); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kd::serve
