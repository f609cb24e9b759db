// kd distill --config FILE [--set key=value ...] [--resume | --overwrite]
// Teacher knowledge → distilled and baseline students over several seeds → report (train/distill_pipeline.h).
#include <filesystem>

#include "command.h"
#include "run_folder_flags.h"
#include "kd/io/atomic_file.h"
#include "kd/train/data_parallel.h"
#include "kd/train/distill_pipeline.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

class DistillCommand : public Command {
 public:
  std::string name() const override { return "distill"; }
  std::string help() const override {
    return "train a small student from a teacher (cached soft labels + labels), with a no-teacher baseline and a report";
  }

  void add_options(CLI::App& app) override {
    run_.add_to(app, "distill.temperature=4", "continue an interrupted run: finished parts are kept");
    common_.add_to(app);
    precision_.add_to(app);
    dist_.add_to(app);
  }

  bool data_parallel() const override { return true; }

  int run() override {
    common_.apply();
    const torch::Device device = dist_.join(common_.resolve_device());  // before anything is read or written
    precision_.apply(device);
    Config config = run_.load();
    // Loads the teacher, checks the student's sizes and that every key was understood: nothing is
    // written before.
    const auto pipeline = DistillPipeline::from_config(config, device, run_.resume, !common_.no_progress);
    const DistillOptions& options = pipeline->options();

    const fs::path run(options.run_dir);
    const bool has_run = fs::exists(run / "config.yaml");
    const bool main_rank = is_main_process();  // with torchrun, rank 0 alone writes the run folder
    if (main_rank) run_.prepare(run, has_run, distill_outputs());
    DistributedOptions::check_same_start(name(), config.resolved_yaml(),
                                         strf("resume=%d overwrite=%d", run_.resume, run_.overwrite));
    if (main_rank) {
      if (run_.resume && has_run) check_resume_config((run / "config.yaml").string(), config, distill_resumable_keys());
      fs::create_directories(run);
      write_file_atomic((run / "config.yaml").string(), config.resolved_yaml());
    }

    const DistillSummary s = pipeline->run();
    if (!main_rank) return 0;
    log_info(strf("done in %.1f min: report in %s/report.md, deployable student in %s", s.wall_seconds / 60.0,
                  options.run_dir.c_str(), s.student_dir.c_str()));
    return 0;
  }

 private:
  RunFolderFlags run_;
  CommonOptions common_;
  PrecisionOptions precision_;
  DistributedOptions dist_;
};

}  // namespace

std::unique_ptr<Command> make_distill_command() { return std::make_unique<DistillCommand>(); }

}  // namespace kd::cli
