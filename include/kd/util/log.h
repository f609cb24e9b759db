// Minimal leveled logging to stderr with a timestamp. (spdlog from Debian cannot be used beside
// LibTorch: the torch wheel ships its own, newer fmt headers, which shadow the ones spdlog needs.)
#pragma once

#include <string>

namespace kd {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_log_level(LogLevel level);
LogLevel parse_log_level(const std::string& name);  // "debug", "info", "warn", "error"

// Put before every message of this process (kd's data-parallel ranks other than 0: "rank 1: ").
void set_log_prefix(const std::string& prefix);

// printf-style formatting into a std::string.
std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));

void log(LogLevel level, const std::string& message);
inline void log_info(const std::string& message) { log(LogLevel::Info, message); }
inline void log_warn(const std::string& message) { log(LogLevel::Warn, message); }
inline void log_debug(const std::string& message) { log(LogLevel::Debug, message); }

}  // namespace kd
