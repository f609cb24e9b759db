// The table of a `kd ablate` run (train/ablation.h): one row per variant, its accuracies from its own
// report.json. Each variant is judged against the row above it (ablations add one thing at a time) on the
// validation rows, the rows that chose its checkpoints, since keeping a term is a choice of settings and a
// choice must not be made on the test rows; the test figures, measured once, stand beside it.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/eval/distill_report.h"

namespace kd {

struct AblationRow {
  std::string name, folder, changes;  // AblationVariant's
  bool finished = false;              // its report.json is written
  double wall_seconds = 0;            // kd distill time of the variant, summed over resumed runs
  ReportModel distilled;              // per seed: test accuracy, macro-F1, validation accuracy
};

// One row against the row above it.
struct AblationEffect {
  double valid_gain = NAN, valid_noise = NAN;  // mean validation accuracy difference; seed_noise of the two
  double test_gain = NAN, test_noise = NAN;
  std::string verdict;  // "helps", "hurts", "within noise", "one seed: not decided", "not measured"
};

// `row` against `above`, decided on the validation accuracies: helps when the gain exceeds the seed noise,
// hurts when the loss does.
AblationEffect ablation_effect(const AblationRow& row, const AblationRow& above);

struct AblationReport {
  std::string source, base, run_dir;     // the ablation file, the experiment it varies, its folder
  std::string common_changes;            // the shared patch as one line of YAML
  std::string date, cpu;                 // utc_now_iso(), cpu_model_name()
  int threads = 0;
  std::string teacher_dir, valid_file, test_file;  // from the first finished variant's report.json
  double teacher_accuracy = NAN;
  std::vector<AblationRow> rows;

  // Reads each finished variant's report.json (FormatError naming a malformed one).
  void read_results();
  nlohmann::json to_json() const;
  std::string to_markdown() const;
};

// ablation.json and ablation.md in `dir`, each written atomically.
void write_ablation_report(const std::string& dir, const AblationReport& report);

}  // namespace kd
