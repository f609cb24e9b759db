// The report of a causal-LM distillation run (kd distill-lm): teacher, distilled student and the
// baseline student (same initialization, same tokens, cross-entropy only) side by side — parameters
// (all and non-embedding), size on disk, perplexity on the evaluation text, batch-1 tokens/s for
// prefill and generation with the KV cache, speed-ups — plus the training curves, where the curves'
// held-out slice came from, and the targets the config declares (report.targets) with the verdicts
// computed from the measured figures (targets.h). Written as report.json, report.md and curves.svg (with
// curves.png beside it), each atomically, with the same helpers as the classification report
// (distill_report.h, svg_chart.h, png_render.h).
//
// Targets (report.targets):
//   non_embedding_ratio: R         student / teacher non-embedding parameters ≤ R
//   perplexity_below_baseline: true  distilled student's perplexity below the baseline's ("not measured"
//                                  when no baseline was trained)
//   generate_speedup: S            student / teacher batch-1 generation tokens/s ≥ S
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/eval/lm_profile.h"
#include "kd/eval/perplexity.h"
#include "kd/eval/targets.h"
#include "kd/io/config.h"

namespace kd {

struct LmCurvePoint {
  int64_t step = 0, tokens = 0;  // optimizer steps and training tokens so far
  double train_loss = NAN;       // mean training loss since the previous point
  double eval_perplexity = NAN;  // on the curve's held-out slice; NaN where not measured
};

struct LmReportModel {
  std::string name;  // "teacher", "distilled student", "baseline student"
  std::string path;  // file or folder it was saved to / loaded from
  LmProfile profile;
  PerplexityResult perplexity;
  std::vector<LmCurvePoint> curve;  // empty for the teacher
  double train_seconds = 0;
  nlohmann::json to_json() const;
  static LmReportModel from_json(const nlohmann::json& j);
};

// The targets an LM report knows (report.targets keys), and reading them from that section:
// ConfigError naming an unknown key, a threshold that is not a finite number > 0, or a yes/no target
// that is not true/false.
const std::vector<TargetSpec>& lm_target_specs();
std::vector<DeclaredTarget> read_lm_targets(ConfigNode targets_section);

// Where the curves' held-out perplexity was measured: tokens [begin, end) of `file`.
struct LmHeldOutSlice {
  std::string source;  // "data.valid", "data.train (unused tail)", or "" (no curve perplexity)
  std::string file;
  int64_t begin = 0, end = 0;
  nlohmann::json to_json() const;
};

struct LmReport {
  std::string cpu, date;
  int threads = 0;
  std::string train_file, eval_file;
  int64_t train_tokens = 0;  // distinct tokens each student was trained on
  int64_t epochs = 1;        // passes over them
  nlohmann::json settings = nlohmann::json::object();
  LmReportModel teacher, student, baseline;
  bool has_baseline = true;
  LmHeldOutSlice held_out;                // the curves' slice
  std::vector<DeclaredTarget> targets;    // as declared in report.targets, in order
  std::vector<std::string> warnings;      // e.g. "selection on the reported set: ..."

  // Ratios: NaN when a denominator is missing.
  double generate_speedup() const;  // student / teacher generation tokens/s
  double prefill_speedup() const;
  double non_embedding_ratio() const;  // student / teacher non-embedding parameters
  // The figure a target key measures (NaN value: not measured; no spread: the profile keeps only the
  // median of its repeats).
  Measurement measure(const std::string& key) const;
  // The declared targets judged against the measured figures (targets.h's rule).
  std::vector<TargetResult> target_results() const;
  nlohmann::json to_json() const;
  std::string to_markdown() const;
};

void write_lm_report(const std::string& run_dir, const LmReport& report);
std::string lm_curves_svg(const LmReport& report);

}  // namespace kd
