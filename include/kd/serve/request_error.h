// A request the server cannot answer: its HTTP status and, for a bad field, the field's name. Answered as
// an OpenAI-style error object, {"error": {"message", "type", "param", "code"}}, so that clients written
// for that API read it; the server itself stays up.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace kd::serve {

class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& message, std::string param = "")
      : std::runtime_error(message), status_(status), param_(std::move(param)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending field; empty when none

 private:
  int status_;
  std::string param_;
};

// The error object for `status`: type "invalid_request_error" for 4xx, "server_error" otherwise.
nlohmann::json error_json(int status, const std::string& message, const std::string& param = "");

// Field readers for JSON request bodies: a RequestError 400 naming `key` when the value has another
// type or is out of range (NaN included).
const nlohmann::json* find_field(const nlohmann::json& body, const std::string& key);  // null when absent
int64_t int_field(const nlohmann::json& body, const std::string& key, int64_t fallback, int64_t lo, int64_t hi);
double number_field(const nlohmann::json& body, const std::string& key, double fallback, double lo, double hi);
bool bool_field(const nlohmann::json& body, const std::string& key, bool fallback);
// A non-empty, valid UTF-8 string (`key` names it in errors, e.g. "texts[3]").
std::string text_value(const nlohmann::json& value, const std::string& key);

}  // namespace kd::serve
