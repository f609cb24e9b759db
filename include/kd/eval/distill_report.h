// The report that ends every distillation run: teacher, distilled student and baseline student
// (the same student trained without the teacher, α = 0, same budget) side by side, all measured in
// the same run on the same machine. Written as report.json (every figure), report.md (a table a
// person reads, linking the plots), curves.svg and accuracy_vs_latency.svg (and their PNGs) in the run
// folder.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/eval/model_profile.h"
#include "kd/eval/targets.h"
#include "kd/train/trainer.h"

namespace kd {

// Mean of `v`; NaN when empty. Sample standard deviation (n - 1); 0 for one value, NaN when empty.
double mean_of(const std::vector<double>& v);
double std_of(const std::vector<double>& v);
// Run-to-run noise of a difference between two means over seeds: 2 × the larger sample std; NaN when
// either has fewer than 2 seeds (one seed says nothing about the spread).
double seed_noise(const std::vector<double>& a, const std::vector<double>& b);

struct ReportModel {
  std::string name;                     // "teacher", "distilled student", "baseline student"
  std::string type;                     // registry key of the architecture
  std::vector<int64_t> seeds;           // one per run; may be empty (runs are then numbered)
  std::vector<double> accuracy, macro_f1;             // on the reported (test) rows, one per seed (fractions)
  std::vector<std::vector<EvalRecord>> histories;     // training curves per seed; empty for the teacher
  ModelProfile profile;
  std::vector<double> valid_accuracy;                 // on the validation rows that chose the checkpoint

  double accuracy_mean() const { return mean_of(accuracy); }
  double accuracy_std() const { return std_of(accuracy); }
  double macro_f1_mean() const { return mean_of(macro_f1); }
  double macro_f1_std() const { return std_of(macro_f1); }
  std::string seed_label(size_t run) const;  // "seed 13", or "run 2" without seeds
  nlohmann::json to_json() const;
};

// Figures derived from the three models. Ratios are NaN (null in JSON) when a denominator is zero
// or missing, never infinite.
struct ReportFigures {
  double retention_distilled = NAN, retention_baseline = NAN;  // student mean accuracy / teacher accuracy
  double gain = NAN;                // distilled mean accuracy - baseline mean accuracy
  double distilled_std = NAN, baseline_std = NAN;  // accuracy std over each student's seeds
  double gain_noise = NAN;          // 2 × the larger of the two students' seed std
  std::optional<bool> gain_beyond_noise;  // unset when either student has fewer than 2 seeds
  // Speed ratios are medians of per-round ratios with a bootstrap interval (paired_ratio); where the
  // profiles carry no rounds (reports written before they did), the ratio of the medians, no interval.
  RatioEstimate speedup_b1;           // teacher latency / distilled-student latency at batch 1
  RatioEstimate baseline_speedup_b1;
  RatioEstimate throughput_ratio_b64;  // distilled-student throughput / teacher throughput
  double compression_disk = NAN;      // teacher bytes / student bytes
  double compression_params = NAN;    // teacher parameters / student parameters
  double flops_ratio = NAN;           // teacher FLOPs / student FLOPs per example
  nlohmann::json to_json() const;
};

// The targets a classification report knows (report.targets): retention, speedup_b1,
// throughput_ratio_b64, size_ratio, params_ratio, flops_ratio, gain_beyond_noise.
const std::vector<TargetSpec>& distill_target_specs();

struct DistillReport {
  std::string dataset;
  std::string valid_file;  // the rows that chose checkpoints
  std::string test_file;   // the rows the figures are measured on, once
  nlohmann::json data = nlohmann::json::object();  // DataSplits::to_json(): sizes, held-out row ids, warnings
  std::vector<std::string> warnings;                // e.g. "selection on the reported set"
  std::vector<DeclaredTarget> targets;              // report.targets, judged by target_results()
  std::string cpu;   // cpu_model_name()
  std::string date;  // UTC, ISO 8601
  int threads = 0;
  nlohmann::json settings = nlohmann::json::object();  // T, α, soft loss, student config, seeds, ...
  ReportModel teacher, distilled, baseline;
  // With stages: the distilled student after each stage, in order (the last is `distilled`).
  std::vector<ReportModel> stages;

  ReportFigures figures() const;
  std::vector<TargetResult> target_results() const;
  nlohmann::json to_json() const;
  std::string to_markdown() const;
  std::string to_table() const;  // console: fixed-width columns
};

// Writes report.json, report.md, curves.svg and accuracy_vs_latency.svg, each with a PNG of the same
// picture beside it (png_render.h), into run_dir (created if missing), each file atomically.
void write_report(const std::string& run_dir, const DistillReport& report);

// The SVG documents write_report writes, for callers that want them elsewhere.
std::string curves_svg(const DistillReport& report);
std::string accuracy_latency_svg(const DistillReport& report);

// Cells of the report tables, shared with the comparison of runs (compare_report.h); "n/a" for a figure
// that was not measured.
std::string percent_cell(double fraction);                     // "87.10%"
std::string seeds_cell(const std::vector<double>& fractions);  // "87.10 ± 0.31% (3 seeds)", or the one value
std::string si_cell(double value, const char* unit);           // "22.71 M", "1.23 GFLOP"
std::string ratio_cell(const RatioEstimate& ratio);            // "11.4× (11.1–11.6)"
// Teacher time / student time round by round (paired_ratio); for profiles without rounds, the ratio of
// the medians. batch1: latency at batch 1, else the time of a large batch (the throughput ratio).
RatioEstimate teacher_speedup(const ModelProfile& teacher, const ModelProfile& student, bool batch1);
// `j` with every non-finite number in it made null (JSON has no NaN or infinity).
nlohmann::json finite_json(nlohmann::json j);

// "model name" of the first processor in /proc/cpuinfo; "unknown CPU" where there is none.
std::string cpu_model_name();
// The current time in UTC as "2026-11-27T14:03:12Z".
std::string utc_now_iso();

}  // namespace kd
