// kd compare --runs DIR DIR ... --out DIR [--reference DIR] [--latency-repeats N --latency-warmup W
//            --latency-warmup-seconds S]
// Several finished `kd distill` runs of one teacher and one test file on one table and one
// accuracy-vs-latency chart: accuracies from each run's report.json, speeds measured now, every model in
// the same rotating rounds (eval/compare_report.h).
#include <cstdio>

#include "command.h"
#include "kd/eval/compare_report.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

class CompareCommand : public Command {
 public:
  std::string name() const override { return "compare"; }
  std::string help() const override {
    return "put several kd distill runs of one teacher on one accuracy-vs-latency table and chart, speeds measured "
           "now";
  }

  void add_options(CLI::App& app) override {
    app.add_option("--runs", options_.runs, "run folders written by kd distill (one teacher, one test file)")
        ->required()
        ->expected(1, -1);
    app.add_option("-o,--out", out_, "folder for compare.json, compare.md and accuracy_vs_latency.svg/.png")
        ->required();
    app.add_option("--reference", options_.reference,
                   "one of --runs: say for every other run's distilled student how it fares against this one's");
    app.add_option("--latency-repeats", options_.speed.repeats, "timed passes of each model and kind")
        ->default_val(50)
        ->capture_default_str()
        ->check(kPositive);
    app.add_option("--latency-warmup", options_.speed.warmup, "untimed passes first (at least)")
        ->capture_default_str()
        ->check(kNonNegative);
    app.add_option("--latency-warmup-seconds", options_.speed.warmup_seconds, "least time spent in untimed passes")
        ->capture_default_str()
        ->check(kNonNegative);
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    options_.device = common_.resolve_device();  // before anything is read
    const CompareReport report = compare_runs(options_);
    write_compare(out_, report);
    std::printf("%s", report.to_markdown().c_str());
    log_info("comparison in " + out_ + "/compare.md");
    return 0;
  }

 private:
  CompareOptions options_;
  std::string out_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_compare_command() { return std::make_unique<CompareCommand>(); }

}  // namespace kd::cli
