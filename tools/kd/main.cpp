// kd: knowledge distillation from the command line. `kd --help` lists the commands.
#include <iostream>

#include "command.h"
#include "kd/error.h"
#include "kd/train/data_parallel.h"
#include "kd/util/device.h"
#include "kd/util/log.h"

namespace kd::cli {

void CommonOptions::add_to(CLI::App& app) {
  app.add_option("--threads", threads, "intra-op CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--device", device,
                 "where the models run: cpu, cuda or cuda:N (the causal-LM commands run on the CPU only)")
      ->capture_default_str();
  app.add_flag("--no-progress", no_progress, "do not draw progress bars");
  app.add_option("--log-level", log_level, "debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
}

void CommonOptions::apply() const {
  if (threads > 0) torch::set_num_threads(threads);
  set_log_level(parse_log_level(log_level));
}

torch::Device CommonOptions::resolve_device() const { return parse_device(device); }

void CommonOptions::require_cpu(const std::string& command) const {
  if (!parse_device_name(device).is_cpu())
    throw ConfigError(located("--device " + device, "kd " + command + " runs on the CPU only", "use --device cpu"));
}

void DistributedOptions::add_to(CLI::App& app) {
  app.add_option("--dist-timeout", timeout_s,
                 "with torchrun: seconds a rank waits for the others (joining, each collective) before it stops "
                 "with an error")
      ->capture_default_str()
      ->check(kPositive);
}

torch::Device DistributedOptions::join(const torch::Device& device) const {
  const WorldEnv env = WorldEnv::from_environment();
  if (!env.distributed()) return device;
  const torch::Device mine = device.is_cuda() && !device.has_index()
                                 ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank))
                                 : device;
  set_data_parallel(std::make_unique<DataParallel>(
      env, mine, std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000))));
  if (env.rank != 0) {  // rank 0 tells the story; the others speak only of trouble, and say who they are
    set_log_prefix("rank " + std::to_string(env.rank) + ": ");
    set_log_level(LogLevel::Warn);
  }
  return mine;
}

void DistributedOptions::check_same_start(const std::string& command, const std::string& resolved,
                                          const std::string& flags) {
  if (auto* dp = data_parallel()) dp->check_same_config(resolved + "kd_command: " + command + "\nkd_flags: '" + flags + "'\n");
}

void PrecisionOptions::add_to(CLI::App& app) {
  app.add_option("--precision", precision,
                 "fp32; bf16: forward passes in bfloat16 (autocast; weights, gradients, optimizer state stay float32) "
                 "where the CPU (avx512_bf16, amx_bf16) or GPU has bf16, else float32 with a note; auto: bf16 where it "
                 "pays")
      ->capture_default_str();
}

PrecisionChoice PrecisionOptions::apply(const torch::Device& device) const {
  const auto choice = resolve_precision(precision, device);
  set_precision(choice.precision);
  if (precision == "bf16" && choice.precision != Precision::kBFloat16)
    log_warn("--precision bf16: " + choice.reason + "; running float32");
  else if (precision != "fp32")
    log_info("precision: " + precision_name(choice.precision) + " (" + choice.reason + ")");
  return choice;
}

std::vector<std::unique_ptr<Command>> all_commands() {
  std::vector<std::unique_ptr<Command>> commands;
  commands.push_back(make_train_teacher_command());
  commands.push_back(make_cache_command());
  commands.push_back(make_distill_command());
  commands.push_back(make_eval_command());
  commands.push_back(make_predict_command());
  commands.push_back(make_bench_command());
  commands.push_back(make_compare_command());
  commands.push_back(make_ablate_command());
  commands.push_back(make_generate_command());
  commands.push_back(make_distill_lm_command());
  commands.push_back(make_perplexity_command());
  commands.push_back(make_lm_memory_command());
  commands.push_back(make_export_command());
  commands.push_back(make_quantize_command());
  commands.push_back(make_serve_command());
  return commands;
}

}  // namespace kd::cli

int main(int argc, char** argv) {
  CLI::App app{"kd: knowledge distillation for text classifiers and causal LMs, from the teacher to a small student"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kd 0.1.0");
  // A bad flag is one line on stderr, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "kd: error: " + std::string(e.what()) + " (see kd --help)\n";
  });
  auto commands = kd::cli::all_commands();
  std::vector<std::pair<CLI::App*, kd::cli::Command*>> subs;
  for (auto& c : commands) {
    CLI::App* sub = app.add_subcommand(c->name(), c->help());
    c->add_options(*sub);
    subs.emplace_back(sub, c.get());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a malformed command line (an unknown flag, a missing --config) is a
    // command-line error like a bad value: exit code 2, whatever CLI11's own number for it.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    for (auto& [sub, cmd] : subs) {
      if (!sub->parsed()) continue;
      if (!cmd->data_parallel() && kd::WorldEnv::from_environment().distributed())
        throw kd::ConfigError(kd::located("environment variable WORLD_SIZE", "kd " + cmd->name() +
                                              " does not run data-parallel",
                                          "start it without torchrun (train-teacher, distill and distill-lm run data-parallel)"));
      return cmd->run();
    }
  } catch (const kd::Error& e) {
    std::cerr << "kd: error: " << e.what() << "\n";
    const int code = e.exit_code();
    // Gloo's destructor waits on peers that may be gone: a failed rank leaves without running it.
    if (kd::data_parallel()) std::_Exit(code);
    return code;
  } catch (const c10::Error& e) {
    std::cerr << "kd: error: " << e.what_without_backtrace() << "\n";
    return 10;
  } catch (const std::exception& e) {
    std::cerr << "kd: error: " << e.what() << "\n";
    return 10;
  }
  return 0;
}
