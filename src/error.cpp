#include "kd/error.h"

namespace kd {

std::string located(const std::string& where, const std::string& what, const std::string& hint) {
  std::string msg = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) msg += " (hint: " + hint + ")";
  return msg;
}

}  // namespace kd
