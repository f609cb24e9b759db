// A `kd` subcommand: declares its flags once (name, default, help) on its CLI11 sub-app and runs.
// Commands throw kd::Error on bad input; only main() turns errors into a message and exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kd/util/precision.h"

namespace kd::cli {

class Command {
 public:
  virtual ~Command() = default;
  virtual std::string name() const = 0;
  virtual std::string help() const = 0;
  virtual void add_options(CLI::App& app) = 0;
  virtual int run() = 0;
  // Whether it runs as one rank of a torchrun job (kd/train/data_parallel.h); the others refuse WORLD_SIZE > 1.
  virtual bool data_parallel() const { return false; }
};

// Checks for numeric flags. CLI11's PositiveNumber and NonNegativeNumber report "Value 0 not in range
// 0.000000 to 1797693...": these say what the value must be.
inline const CLI::Validator kPositive(
    [](std::string& s) -> std::string {
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      return !s.empty() && *end == '\0' && v > 0 ? std::string() : "must be a number > 0, got " + s;
    },
    "NUMBER > 0");
inline const CLI::Validator kNonNegative(
    [](std::string& s) -> std::string {
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      return !s.empty() && *end == '\0' && v >= 0 ? std::string() : "must be a number >= 0, got " + s;
    },
    "NUMBER >= 0");

// Options most commands share.
struct CommonOptions {
  int threads = 0;           // 0: all cores
  bool no_progress = false;  // progress bars off
  std::string log_level = "info";
  std::string device = "cpu";  // cpu, cuda or cuda:N
  void add_to(CLI::App& app);
  void apply() const;        // thread count, log level
  // --device, checked by kd::parse_device (ConfigError: malformed, or no such CUDA device).
  torch::Device resolve_device() const;
  // For the commands that run on the CPU only: a ConfigError naming the command unless --device is cpu.
  void require_cpu(const std::string& command) const;
};

// The data-parallel group of the commands that train (train-teacher, distill, distill-lm): joined when torchrun's
// WORLD_SIZE > 1 (kd/train/data_parallel.h), with --dist-timeout bounding every wait on another rank.
struct DistributedOptions {
  double timeout_s = 600;
  void add_to(CLI::App& app);
  // Joins the group the launcher's variables describe, if any (then set process-wide, data_parallel());
  // returns the device this rank uses: with --device cuda, cuda:LOCAL_RANK.
  torch::Device join(const torch::Device& device) const;
  // Rank 0 publishes `resolved` (the config, plus the command and its flags), the others compare: ranks
  // started differently stop with the first differing key. Nothing in one process.
  static void check_same_start(const std::string& command, const std::string& resolved, const std::string& flags);
};

// --precision for the commands whose forward passes may run in bf16 (kd/util/precision.h).
struct PrecisionOptions {
  std::string precision = "fp32";  // fp32, bf16 or auto
  void add_to(CLI::App& app);
  // Resolves --precision for `device`, sets it process-wide, logs which arithmetic runs and why.
  PrecisionChoice apply(const torch::Device& device) const;
};

std::vector<std::unique_ptr<Command>> all_commands();

std::unique_ptr<Command> make_train_teacher_command();
std::unique_ptr<Command> make_distill_command();
std::unique_ptr<Command> make_eval_command();
std::unique_ptr<Command> make_predict_command();
std::unique_ptr<Command> make_cache_command();
std::unique_ptr<Command> make_bench_command();
std::unique_ptr<Command> make_compare_command();
std::unique_ptr<Command> make_ablate_command();
std::unique_ptr<Command> make_generate_command();
std::unique_ptr<Command> make_distill_lm_command();
std::unique_ptr<Command> make_perplexity_command();
std::unique_ptr<Command> make_lm_memory_command();
std::unique_ptr<Command> make_serve_command();
std::unique_ptr<Command> make_export_command();
std::unique_ptr<Command> make_quantize_command();

}  // namespace kd::cli
