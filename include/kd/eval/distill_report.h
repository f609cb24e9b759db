// The report that ends every distillation run: teacher, distilled student and baseline student
// (the same student trained without the teacher, α = 0, same budget) side by side, all measured in
// the same run on the same machine. Written as report.json (every figure), report.md (a table a
// person reads, linking the plots), curves.svg and accuracy_vs_latency.svg in the run folder.
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

  ReportFigures figures() const;
  std::vector<TargetResult> target_results() const;
  nlohmann::json to_json() const;
  std::string to_markdown() const;
  std::string to_table() const;  // console: fixed-width columns
};

// Writes report.json, report.md, curves.svg and accuracy_vs_latency.svg into run_dir (created if
// missing), each file atomically.
void write_report(const std::string& run_dir, const DistillReport& report);

// The SVG documents write_report writes, for callers that want them elsewhere.
std::string curves_svg(const DistillReport& report);
std::string accuracy_latency_svg(const DistillReport& report);

// "model name" of the first processor in /proc/cpuinfo; "unknown CPU" where there is none.
std::string cpu_model_name();
// The current time in UTC as "2026-11-27T14:03:12Z".
std::string utc_now_iso();

}  // namespace kd
