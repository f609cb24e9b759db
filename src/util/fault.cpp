#include "kd/util/fault.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace kd {

void fault_point(const char* name) {
  static const char* spec = std::getenv("KD_FAULT");
  if (!spec) return;
  static const std::string wanted = [] {
    const std::string s = spec;
    return s.substr(0, s.find(':'));
  }();
  static const long at = [] {
    const char* colon = std::strchr(spec, ':');
    return colon ? std::atol(colon + 1) : 1L;
  }();
  static std::atomic<long> passes{0};
  if (wanted == name && ++passes == at) ::raise(SIGKILL);
}

}  // namespace kd
