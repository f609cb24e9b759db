// `kd compare`: several finished `kd distill` runs of one teacher and one test file side by side. The
// accuracies are each run's own (report.json: test accuracy per seed of the distilled and the baseline
// student, and the teacher's), the speeds are measured anew in one process, every model in the same
// rotating rounds (profile_models), so that the latencies of models from runs made on different days
// can be compared at all. Written as compare.json, compare.md (one table, and with a reference run one
// computed sentence per other run) and accuracy_vs_latency.svg / .png.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/data/table_reader.h"
#include "kd/eval/distill_report.h"
#include "kd/eval/model_profile.h"

namespace kd {

// One finished distillation run as kd compare reads it.
struct CompareRun {
  std::string dir;                // the run folder as given
  std::string name;               // how the table and the chart name the run
  std::string teacher_dir;        // report.json settings.teacher
  std::string test_file;          // report.json test_file (config.yaml data.test)
  std::string valid_file;         // report.json valid_file: the rows that chose the checkpoints ("" if absent)
  TableOptions table;             // config.yaml data: the test file's columns
  double teacher_accuracy = NAN;  // the teacher's test accuracy as this run recorded it
  // Accuracies per seed from report.json; the profiles are kd compare's own measurement.
  ReportModel distilled, baseline;
  std::string student_dir;   // <dir>/student
  std::string baseline_dir;  // <dir>/seed-<first seed>/baseline/best; empty when the run has no baseline

  bool has_baseline() const { return !baseline_dir.empty(); }
};

// Reads <dir>/report.json and <dir>/config.yaml. IoError naming the path of a missing folder or file,
// FormatError naming the key of a report.json that lacks one, ConfigError for a run without a test file.
CompareRun read_compare_run(const std::string& dir);

// Whether every run has the first run's teacher folder and test file (the same file on disk); a
// ConfigError naming the run and both values otherwise, and for a run folder given twice.
void check_comparable(const std::vector<CompareRun>& runs);

// A distilled student against the reference run's distilled student.
struct StudentVerdict {
  std::string run, reference;   // CompareRun::name of each
  double accuracy_gap = NAN;    // candidate - reference mean test accuracy (a fraction)
  double noise = NAN;           // 2 × the larger seed std of the two; NaN when either has one seed
  RatioEstimate latency_ratio;  // candidate / reference batch-1 latency, round by round (> 1: slower)
  bool measured = false;        // both accuracies and the latency ratio are known
  bool more_accurate = false;   // strictly higher mean accuracy
  bool no_slower = false;       // median latency ratio <= 1
  std::string sentence;         // the verdict in words, computed from the figures above

  // More accurate at no more batch-1 latency: the reference gains nothing over it.
  bool dominates() const { return measured && more_accurate && no_slower; }
  nlohmann::json to_json() const;
};

StudentVerdict compare_students(const std::string& run, const ReportModel& candidate, const std::string& reference,
                                const ReportModel& reference_model);

struct CompareReport {
  std::string date, cpu;  // utc_now_iso(), cpu_model_name()
  int threads = 0;
  std::string teacher_dir, test_file;
  ReportModel teacher;  // accuracy from the first run's report.json, profile measured here
  std::vector<CompareRun> runs;
  int reference = -1;  // index into runs; -1: no reference, no verdicts
  std::vector<std::string> warnings;

  // One per run other than the reference; none without a reference.
  std::vector<StudentVerdict> verdicts() const;
  nlohmann::json to_json() const;
  std::string to_markdown() const;
};

struct CompareOptions {
  std::vector<std::string> runs;  // run folders, at least one
  std::string reference;          // one of runs, or empty
  SpeedOptions speed;
  torch::Device device = torch::kCPU;
};

// Reads and checks every run, then loads the teacher, each run's student/ and first-seed baseline and
// measures them all in turns on the test rows, each model reading them through its own tokenizer.
// Nothing is written; every input error is thrown before any model is loaded.
CompareReport compare_runs(const CompareOptions& options);

// The teacher and every run's students: test accuracy (± one std over seeds) against batch-1 latency.
std::string compare_svg(const CompareReport& report);

// Writes compare.json, compare.md, accuracy_vs_latency.svg and accuracy_vs_latency.png into out_dir
// (created if missing), each atomically.
void write_compare(const std::string& out_dir, const CompareReport& report);

}  // namespace kd
