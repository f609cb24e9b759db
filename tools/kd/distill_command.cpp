// kd distill --config FILE [--set key=value ...] [--resume | --overwrite]
// Teacher knowledge → distilled and baseline students over several seeds → report (train/distill_pipeline.h).
#include <filesystem>

#include "command.h"
#include "kd/io/atomic_file.h"
#include "kd/models/student_registry.h"
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
    app.add_option("-c,--config", config_, "experiment YAML file")->required()->check(CLI::ExistingFile);
    app.add_option("--set", overrides_, "override a config value, e.g. --set distill.temperature=4 (repeatable)");
    app.add_option("--run-dir", run_dir_, "run folder (overrides the config's run_dir)");
    auto* resume = app.add_flag("--resume", resume_, "continue an interrupted run: finished parts are kept");
    app.add_flag("--overwrite", overwrite_, "start over in a run folder that already holds a run")->excludes(resume);
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    if (!run_dir_.empty()) overrides_.push_back("run_dir=" + run_dir_);
    Config config = Config::load(config_, overrides_);
    auto root = config.root();
    DistillOptions options = DistillOptions::from(root);
    options.resume = resume_;
    options.progress = !common_.no_progress;
    auto student = root.child("student");
    // A typo in the student type fails before any data is read; the sizes are read (and checked) when
    // the first student is built, after which every key must have been used.
    (void)student_registry().get(student.get<std::string>("type", "bilstm"), student.where("type"));

    DistillPipeline pipeline(options, student);  // loads the teacher, checks the student's sizes
    config.check_all_used();

    const fs::path run(options.run_dir);
    const bool has_run = fs::exists(run / "config.yaml");
    if (has_run && !resume_ && !overwrite_)
      throw ConfigError(located(options.run_dir, "run folder already holds a run",
                                "pass --resume to continue it or --overwrite to start over"));
    if (overwrite_ && has_run) {
      for (const auto& entry : fs::directory_iterator(run)) fs::remove_all(entry.path());
    }
    fs::create_directories(run);
    write_file_atomic((run / "config.yaml").string(), config.resolved_yaml());

    const DistillSummary s = pipeline.run();
    log_info(strf("done in %.1f min: report in %s/report.md, deployable student in %s", s.wall_seconds / 60.0,
                  options.run_dir.c_str(), s.student_dir.c_str()));
    return 0;
  }

 private:
  std::string config_, run_dir_;
  std::vector<std::string> overrides_;
  bool resume_ = false, overwrite_ = false;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_distill_command() { return std::make_unique<DistillCommand>(); }

}  // namespace kd::cli
