// Assembles GGUF files byte by byte for the tests of the GGUF reader and the models that load from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kd::test {

struct TensorSpec {
  std::string name;
  uint32_t type;
  std::vector<uint64_t> ne;
  uint64_t offset;
};

// Assembles a GGUF file: header, metadata (already encoded), tensor table, padding, data.
class GgufBytes {
 public:
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::string kv;       // encoded metadata entries
  uint64_t kv_count = 0;
  std::vector<TensorSpec> tensors;
  std::string data;
  uint64_t alignment = 32;

  template <class T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static void put_str(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
  }
  void add_u32(const std::string& key, uint32_t v) {
    put_str(kv, key);
    put<uint32_t>(kv, 4);
    put<uint32_t>(kv, v);
    ++kv_count;
  }
  void add_f32(const std::string& key, float v) {
    put_str(kv, key);
    put<uint32_t>(kv, 6);
    put<float>(kv, v);
    ++kv_count;
  }
  void add_string(const std::string& key, const std::string& v) {
    put_str(kv, key);
    put<uint32_t>(kv, 8);
    put_str(kv, v);
    ++kv_count;
  }
  void add_strings(const std::string& key, const std::vector<std::string>& v) {
    put_str(kv, key);
    put<uint32_t>(kv, 9);
    put<uint32_t>(kv, 8);
    put<uint64_t>(kv, v.size());
    for (const auto& s : v) put_str(kv, s);
    ++kv_count;
  }

  std::string bytes() const {
    std::string out = magic;
    put<uint32_t>(out, version);
    put<uint64_t>(out, tensors.size());
    put<uint64_t>(out, kv_count);
    out += kv;
    for (const auto& t : tensors) {
      put_str(out, t.name);
      put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
      for (auto d : t.ne) put<uint64_t>(out, d);
      put<uint32_t>(out, t.type);
      put<uint64_t>(out, t.offset);
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    return out + data;
  }
};

}  // namespace kd::test
