// kd ablate --config FILE [--set key=value ...] [--resume | --overwrite]
// Variants of one kd distill experiment, each a whole run, and the table of what each buys (train/ablation.h).
#include <filesystem>

#include "command.h"
#include "run_folder_flags.h"
#include "kd/io/atomic_file.h"
#include "kd/train/ablation.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

class AblateCommand : public Command {
 public:
  std::string name() const override { return "ablate"; }
  std::string help() const override {
    return "distil variants of one experiment (which knowledge terms, which stages) and tabulate what each buys";
  }

  void add_options(CLI::App& app) override {
    run_.add_to(app, "with.train.epochs=1", "continue an interrupted ablation: finished variants are kept");
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    const torch::Device device = common_.resolve_device();  // before anything is read or written
    Config config = run_.load();
    AblationOptions options = AblationOptions::from(config);
    config.check_all_used();
    // Every variant is checked (teachers loaded, sizes, keys) before anything is written or removed.
    Ablation ablation(options, device, run_.resume, !common_.no_progress);

    const fs::path run(options.run_dir);
    run_.prepare(run, fs::exists(run / "ablation.yaml"), ablation.outputs());
    fs::create_directories(run);
    write_file_atomic((run / "ablation.yaml").string(), config.resolved_yaml());
    const AblationReport report = ablation.run();
    double seconds = 0;
    for (const auto& r : report.rows) seconds += r.wall_seconds;
    log_info(strf("done: %zu variants in %.1f min, table in %s/ablation.md", report.rows.size(), seconds / 60.0,
                  options.run_dir.c_str()));
    return 0;
  }

 private:
  RunFolderFlags run_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_ablate_command() { return std::make_unique<AblateCommand>(); }

}  // namespace kd::cli
