// Paths the test binary was configured with (see tests/CMakeLists.txt) and small helpers.
#pragma once

#include <filesystem>
#include <string>

namespace kd::test {

inline std::string shared_data(const std::string& rel) { return std::string(KD_SHARED_DATA) + "/" + rel; }
inline std::string model_dir() { return KD_MODEL_DIR; }
// The causal LM (SmolLM2-135M-Instruct, Q4_1 GGUF) that scripts/setup.sh links under models/.
inline std::string llm_gguf() { return KD_LLM_GGUF; }
inline std::string golden(const std::string& rel) { return std::string(KD_GOLDEN_DIR) + "/" + rel; }
inline std::string kd_exe() { return KD_EXE; }
inline std::string source_dir() { return KD_SOURCE_DIR; }
// The Python interpreter with the reference packages (torch, transformers, safetensors).
inline std::string python() { return KD_PYTHON; }

// A fresh, empty folder under the build tree for one test (shared/ is read-only in CI).
inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::path(KD_BINARY_DIR) / "test_tmp" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace kd::test
