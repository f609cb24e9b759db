// Runs the `kd` binary for the end-to-end tests: in `dir`, stdout and stderr captured, the exit code.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "kd/io/atomic_file.h"
#include "test_paths.h"

namespace kd::test {

struct RunResult {
  int code;
  std::string out, err;
};

inline RunResult run_kd(const std::string& args, const std::filesystem::path& dir, int threads = 1,
                        const std::string& stdin_file = "") {
  const std::string err_file = (dir / "stderr.txt").string(), out_file = (dir / "stdout.txt").string();
  std::string cmd = "cd " + dir.string() + " && " + kd_exe() + " " + args + " --no-progress --threads " +
                    std::to_string(threads);
  if (!stdin_file.empty()) cmd += " <" + stdin_file;
  cmd += " 2>" + err_file + " >" + out_file;
  const int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), read_file(out_file), read_file(err_file)};
}

}  // namespace kd::test
