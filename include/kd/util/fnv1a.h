// FNV-1a, 64-bit (Fowler, Noll, Vo): a fast, dependency-free content hash for fingerprints and
// integrity checks (teacher weights, data files, cache payloads). Not cryptographic: it detects
// accidental change (a different file, a flipped or missing byte), not tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kd {

class Fnv1a64 {
 public:
  static constexpr uint64_t kOffsetBasis = 0xcbf29ce484222325ull;
  static constexpr uint64_t kPrime = 0x100000001b3ull;

  void update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    uint64_t h = state_;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kPrime;
    state_ = h;
  }
  void update(std::string_view s) { update(s.data(), s.size()); }
  // A string followed by a 0 byte, so that ("ab", "c") and ("a", "bc") hash differently.
  void update_field(std::string_view s) {
    update(s);
    const unsigned char zero = 0;
    update(&zero, 1);
  }

  uint64_t digest() const { return state_; }
  std::string hex() const;  // 16 lower-case hex digits

 private:
  uint64_t state_ = kOffsetBasis;
};

std::string hex64(uint64_t value);  // 16 lower-case hex digits
// Hash of a file's bytes, read in chunks; IoError naming the file when it cannot be read.
uint64_t fnv1a64_file(const std::string& path);

}  // namespace kd
