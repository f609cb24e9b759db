// Runs the `kd` binary for the end-to-end tests: in `dir`, stdout and stderr captured, the exit code.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "kd/io/atomic_file.h"
#include "test_paths.h"

namespace kd::test {

struct RunResult {
  int code;
  std::string out, err;
};

// `env`: assignments put before the command (e.g. "KD_FAULT=step:3"). The shell forks kd (it is not its last
// command), so a kd killed by a signal reads as exit code 128 + the signal.
inline RunResult run_kd(const std::string& args, const std::filesystem::path& dir, int threads = 1,
                        const std::string& stdin_file = "", const std::string& env = "") {
  const std::string err_file = (dir / "stderr.txt").string(), out_file = (dir / "stdout.txt").string();
  std::string cmd = "cd " + dir.string() + " && " + env + (env.empty() ? "" : " ") + kd_exe() + " " + args +
                    " --no-progress --threads " + std::to_string(threads);
  if (!stdin_file.empty()) cmd += " <" + stdin_file;
  cmd += " 2>" + err_file + " >" + out_file + "; exit $?";
  const int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), read_file(out_file), read_file(err_file)};
}

// The error is one line, "kd: error: ...", and the last thing written (info logs may precede it):
// the number of such lines, 0 when the last line is not one.
inline size_t error_lines(const std::string& err) {
  size_t n = 0;
  for (size_t pos = 0; (pos = err.find("kd: error:", pos)) != std::string::npos; ++pos) ++n;
  const auto last = err.rfind("kd: error:");
  if (last == std::string::npos || err.find('\n', last) + 1 != err.size()) return 0;
  return n;
}

// The header and first `n` rows of a real TSV.
inline void head_tsv(const std::string& src, const std::filesystem::path& dst, int n) {
  std::ifstream in(src);
  std::ofstream out(dst);
  std::string line;
  for (int i = 0; i <= n && std::getline(in, line); ++i) out << line << "\n";
}

}  // namespace kd::test
