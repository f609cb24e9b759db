// Paths the test binary was configured with (see tests/CMakeLists.txt) and small helpers.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

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

// Every folder temp_dir made in this process; test_main.cpp removes them when all tests passed.
inline std::vector<std::filesystem::path>& temp_dirs_made() {
  static std::vector<std::filesystem::path> dirs;
  return dirs;
}

// A fresh, empty folder under the build tree for one test (shared/ is read-only in CI). The process id
// is part of the name: ctest runs each test in its own process, two at a time, and tests of one suite
// set up the same suite folder, so a fixed name would let one process delete another's files. A
// passing process removes its folders (a run of the suite would otherwise leave gigabytes of
// checkpoints behind); a failing one keeps them to look at.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::path(KD_BINARY_DIR) / "test_tmp" / (name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  temp_dirs_made().push_back(p);
  return p;
}

}  // namespace kd::test
