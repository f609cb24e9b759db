#include "kd/util/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

#include "kd/error.h"

namespace kd {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::string g_prefix;  // set once at start-up, before any thread logs
}

void set_log_prefix(const std::string& prefix) { g_prefix = prefix; }

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }

LogLevel parse_log_level(const std::string& name) {
  if (name == "debug") return LogLevel::Debug;
  if (name == "info") return LogLevel::Info;
  if (name == "warn") return LogLevel::Warn;
  if (name == "error") return LogLevel::Error;
  throw ConfigError("unknown log level '" + name + "' (hint: debug, info, warn, error)");
}

std::string strf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, format, args);
  va_end(args);
  return out;
}

void log(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) < g_level) return;
  std::time_t t = std::time(nullptr);
  char stamp[16];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&t));
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::fprintf(stderr, "[%s %s] %s%s\n", stamp, names[static_cast<int>(level)], g_prefix.c_str(), message.c_str());
}

}  // namespace kd
