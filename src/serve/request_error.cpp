#include "kd/serve/request_error.h"

#include <cmath>

#include "kd/text/unicode.h"

namespace kd::serve {

nlohmann::json error_json(int status, const std::string& message, const std::string& param) {
  nlohmann::json e = {{"message", message},
                      {"type", status < 500 ? "invalid_request_error" : "server_error"},
                      {"param", param.empty() ? nlohmann::json() : nlohmann::json(param)},
                      {"code", status}};
  return {{"error", e}};
}

const nlohmann::json* find_field(const nlohmann::json& body, const std::string& key) {
  const auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

int64_t int_field(const nlohmann::json& body, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  const auto* v = find_field(body, key);
  if (!v) return fallback;
  if (!v->is_number_integer())
    throw RequestError(400, "'" + key + "' must be an integer", key);
  // Unsigned values above int64's range read as negative through get<int64_t>; check them first.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    throw RequestError(400, "'" + key + "' must be at most " + std::to_string(hi), key);
  const auto x = v->get<int64_t>();
  if (x < lo || x > hi)
    throw RequestError(400, "'" + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
  return x;
}

double number_field(const nlohmann::json& body, const std::string& key, double fallback, double lo, double hi) {
  const auto* v = find_field(body, key);
  if (!v) return fallback;
  if (!v->is_number()) throw RequestError(400, "'" + key + "' must be a number", key);
  const auto x = v->get<double>();
  if (!(x >= lo && x <= hi))  // written so that NaN fails too
    throw RequestError(400, "'" + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
  return x;
}

bool bool_field(const nlohmann::json& body, const std::string& key, bool fallback) {
  const auto* v = find_field(body, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw RequestError(400, "'" + key + "' must be true or false", key);
  return v->get<bool>();
}

std::string text_value(const nlohmann::json& value, const std::string& key) {
  if (!value.is_string()) throw RequestError(400, "'" + key + "' must be a string", key);
  auto s = value.get<std::string>();
  if (s.find_first_not_of(" \t\r\n") == std::string::npos)
    throw RequestError(400, "'" + key + "' is empty", key);
  // The JSON parser rejects invalid UTF-8 already; this guards bodies built another way.
  if (unicode::find_invalid_utf8(s) != std::string::npos)
    throw RequestError(400, "'" + key + "' is not valid UTF-8", key);
  return s;
}

}  // namespace kd::serve
