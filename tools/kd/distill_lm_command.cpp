// kd distill-lm --config FILE [--set key=value ...] [--resume | --overwrite]
// Token-level (or sequence-level / GKD) distillation of a causal LM into a smaller one, with the
// no-teacher baseline, perplexity, batch-1 speed and a report (train/lm_distill.h).
#include <filesystem>

#include "command.h"
#include "run_folder_flags.h"
#include "kd/io/atomic_file.h"
#include "kd/train/data_parallel.h"
#include "kd/train/lm_distill.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

class DistillLmCommand : public Command {
 public:
  std::string name() const override { return "distill-lm"; }
  std::string help() const override {
    return "distill a causal LM (GGUF or folder) into a smaller decoder, with a no-teacher baseline and a report";
  }

  void add_options(CLI::App& app) override {
    run_.add_to(app, "distill.divergence=rkl", "continue an interrupted run: trained students are kept");
    common_.add_to(app);
    dist_.add_to(app);
  }

  bool data_parallel() const override { return true; }

  int run() override {
    common_.apply();
    common_.require_cpu(name());
    dist_.join(torch::kCPU);
    const bool main_rank = is_main_process();  // with torchrun, rank 0 alone writes the run folder
    Config config = run_.load();
    LmDistillOptions options = LmDistillOptions::from(config.root());
    config.check_all_used();
    options.resume = run_.resume;
    options.progress = !common_.no_progress;

    const fs::path run(options.run_dir);
    const bool has_run = fs::exists(run / "config.yaml");
    if (main_rank) run_.prepare(run, has_run, lm_distill_outputs());
    DistributedOptions::check_same_start(name(), config.resolved_yaml(),
                                         strf("resume=%d overwrite=%d", run_.resume, run_.overwrite));
    if (main_rank) {
      // A resumed run may change its folder's name and its report's targets, nothing that shaped a student.
      if (run_.resume && has_run) check_resume_config((run / "config.yaml").string(), config, {"run_dir", "report"});
      fs::create_directories(run);
      write_file_atomic((run / "config.yaml").string(), config.resolved_yaml());
    }

    const LmDistillSummary s = run_lm_distill(options);
    if (!main_rank) return 0;
    log_info(strf("done in %.1f min: perplexity teacher %.2f, student %.2f, baseline %.2f; generation speed-up %.2fx; "
                  "report in %s/report.md",
                  s.wall_seconds / 60.0, s.teacher_perplexity, s.student_perplexity, s.baseline_perplexity,
                  s.generate_speedup, options.run_dir.c_str()));
    if (!s.verdicts.empty()) {
      std::string v;
      for (const auto& x : s.verdicts) v += (v.empty() ? "" : "; ") + x;
      log_info("targets: " + v);
    }
    for (const auto& w : s.warnings) log_warn(w);
    return 0;
  }

 private:
  RunFolderFlags run_;
  CommonOptions common_;
  DistributedOptions dist_;
};

}  // namespace

std::unique_ptr<Command> make_distill_lm_command() { return std::make_unique<DistillLmCommand>(); }

}  // namespace kd::cli
