// The report of a causal-LM distillation run (kd distill-lm): teacher, distilled student and the
// baseline student (same initialization, same tokens, cross-entropy only) side by side — parameters
// (all and non-embedding), size on disk, perplexity on the evaluation text, batch-1 tokens/s for
// prefill and generation with the KV cache, speed-ups — plus the training curves and whether the
// project's targets were met. Written as report.json, report.md and curves.svg, each atomically,
// with the same helpers as the classification report (distill_report.h, svg_chart.h).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/eval/lm_profile.h"
#include "kd/eval/perplexity.h"

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

struct LmReport {
  std::string cpu, date;
  int threads = 0;
  std::string train_file, eval_file;
  int64_t train_tokens = 0;  // distinct tokens each student was trained on
  int64_t epochs = 1;        // passes over them
  nlohmann::json settings = nlohmann::json::object();
  LmReportModel teacher, student, baseline;
  bool has_baseline = true;

  // Ratios: NaN when a denominator is missing.
  double generate_speedup() const;  // student / teacher generation tokens/s
  double prefill_speedup() const;
  double non_embedding_ratio() const;  // student / teacher non-embedding parameters
  nlohmann::json to_json() const;
  std::string to_markdown() const;
};

void write_lm_report(const std::string& run_dir, const LmReport& report);
std::string lm_curves_svg(const LmReport& report);

}  // namespace kd
