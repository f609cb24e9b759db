// Small string helpers shared by error messages and reports.
#pragma once

#include <string>
#include <vector>

namespace kd {

// "a, b, c" (with the default separator): lists of known keys, columns and stages in error messages.
inline std::string join(const std::vector<std::string>& items, const std::string& separator = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

}  // namespace kd
