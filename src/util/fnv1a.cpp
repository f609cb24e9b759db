#include "kd/util/fnv1a.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "kd/error.h"

namespace kd {

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string Fnv1a64::hex() const { return hex64(state_); }

uint64_t fnv1a64_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(located(path, std::filesystem::exists(path) ? "cannot be read" : "no such file"));
  Fnv1a64 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) h.update(buf.data(), static_cast<size_t>(n));
  }
  if (in.bad()) throw IoError(located(path, "read failed"));
  return h.digest();
}

}  // namespace kd
