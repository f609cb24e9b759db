#include "kd/eval/ablation_report.h"

#include <filesystem>
#include <sstream>

#include "kd/eval/compare_report.h"
#include "kd/io/atomic_file.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

double difference(const std::vector<double>& a, const std::vector<double>& b) {
  return a.empty() || b.empty() ? NAN : mean_of(a) - mean_of(b);
}

// "+0.40 points (noise 0.30)", "-1.20 points (one seed)".
std::string gain_cell(double gain, double noise) {
  if (!std::isfinite(gain)) return "—";
  return strf("%+.2f points", 100 * gain) +
         (std::isfinite(noise) ? strf(" (noise %.2f)", 100 * noise) : std::string(" (one seed)"));
}

std::string minutes_cell(double seconds) { return seconds > 0 ? strf("%.1f min", seconds / 60) : "—"; }

}  // namespace

AblationEffect ablation_effect(const AblationRow& row, const AblationRow& above) {
  AblationEffect e;
  const auto &a = row.distilled, &b = above.distilled;
  e.valid_gain = difference(a.valid_accuracy, b.valid_accuracy);
  e.valid_noise = seed_noise(a.valid_accuracy, b.valid_accuracy);
  e.test_gain = difference(a.accuracy, b.accuracy);
  e.test_noise = seed_noise(a.accuracy, b.accuracy);
  if (!std::isfinite(e.valid_gain))
    e.verdict = "not measured";
  else if (!std::isfinite(e.valid_noise))
    e.verdict = "one seed: not decided";
  else if (e.valid_gain > e.valid_noise)
    e.verdict = "helps";
  else if (-e.valid_gain > e.valid_noise)
    e.verdict = "hurts";
  else
    e.verdict = "within noise";
  return e;
}

void AblationReport::read_results() {
  bool first = true;
  for (AblationRow& row : rows) {
    const fs::path dir = fs::path(run_dir) / row.folder;
    row.finished = fs::exists(dir / "report.json");
    if (!row.finished) continue;
    const CompareRun run = read_compare_run(dir.string());
    row.distilled = run.distilled;
    if (first) {
      first = false;
      teacher_dir = run.teacher_dir;
      test_file = run.test_file;
      teacher_accuracy = run.teacher_accuracy;
      valid_file = run.valid_file;
    }
  }
}

nlohmann::json AblationReport::to_json() const {
  nlohmann::json j = {{"source", source},       {"base", base},       {"run_dir", run_dir},
                      {"with", common_changes}, {"date", date},       {"cpu", cpu},
                      {"threads", threads},     {"teacher", teacher_dir}, {"teacher_accuracy", teacher_accuracy},
                      {"valid_file", valid_file}, {"test_file", test_file}};
  nlohmann::json variants = nlohmann::json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const AblationRow& r = rows[i];
    nlohmann::json v = {{"name", r.name},
                        {"folder", r.folder},
                        {"with", r.changes},
                        {"finished", r.finished},
                        {"wall_seconds", r.wall_seconds},
                        {"seeds", r.distilled.seeds},
                        {"test_accuracy", r.distilled.accuracy},
                        {"test_macro_f1", r.distilled.macro_f1},
                        {"valid_accuracy", r.distilled.valid_accuracy}};
    if (i > 0) {
      const AblationEffect e = ablation_effect(r, rows[i - 1]);
      v["against"] = rows[i - 1].name;
      v["effect"] = {{"valid_gain", e.valid_gain}, {"valid_noise", e.valid_noise}, {"test_gain", e.test_gain},
                     {"test_noise", e.test_noise}, {"verdict", e.verdict}};
    }
    variants.push_back(std::move(v));
  }
  j["variants"] = std::move(variants);
  return finite_json(std::move(j));
}

std::string AblationReport::to_markdown() const {
  std::ostringstream out;
  out << "# Ablation of `" << base << "`\n\n";
  out << "Each variant is the kd distill experiment `" << base << "`"
      << (common_changes.empty() ? "" : " changed by `" + common_changes + "`")
      << " and then by the change in its row, trained in its own folder under `" << run_dir
      << "` (its report.md has the rest). Checkpoints were chosen on "
      << (valid_file.empty() ? "the validation rows" : "`" + valid_file + "`")
      << "; each variant is judged against the row above it there (helps or hurts when the difference of the "
         "means exceeds the seed noise, 2 × the larger std), and its test figures on "
      << (test_file.empty() ? "the test rows" : "`" + test_file + "`") << " are measured once. Teacher `"
      << teacher_dir << "`: " << percent_cell(teacher_accuracy) << " on the test rows. " << date << ", " << cpu
      << ", " << threads << " threads.\n\n";
  out << "| variant | change | validation accuracy (chose) | vs the row above, validation | verdict | test accuracy "
         "| vs the row above, test | retention | time |\n"
      << "|---|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const AblationRow& r = rows[i];
    const std::string change = r.changes.empty() ? "—" : "`" + r.changes + "`";
    if (!r.finished) {
      out << "| " << r.name << " | " << change << " | not run yet | | | | | | " << minutes_cell(r.wall_seconds) << " |\n";
      continue;
    }
    AblationEffect e;
    if (i > 0) e = ablation_effect(r, rows[i - 1]);
    const double retention = r.distilled.accuracy_mean() / teacher_accuracy;
    out << "| " << r.name << " | " << change << " | " << seeds_cell(r.distilled.valid_accuracy) << " | "
        << gain_cell(e.valid_gain, e.valid_noise) << " | " << (i == 0 ? "—" : e.verdict) << " | "
        << seeds_cell(r.distilled.accuracy) << " | " << gain_cell(e.test_gain, e.test_noise) << " | "
        << percent_cell(retention) << " | " << minutes_cell(r.wall_seconds) << " |\n";
  }
  return out.str();
}

void write_ablation_report(const std::string& dir, const AblationReport& report) {
  write_file_atomic((fs::path(dir) / "ablation.json").string(), report.to_json().dump(2) + "\n");
  write_file_atomic((fs::path(dir) / "ablation.md").string(), report.to_markdown());
}

}  // namespace kd
