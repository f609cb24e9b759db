#include "kd/eval/distill_report.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kd/error.h"
#include "kd/eval/png_render.h"
#include "kd/io/atomic_file.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// a / b, or NaN where either side was not measured (zero, negative or not finite).
double ratio(double a, double b) {
  return std::isfinite(a) && std::isfinite(b) && a > 0 && b > 0 ? a / b : NAN;
}

// JSON has no NaN or infinity: every non-finite number anywhere in `j` becomes null.
nlohmann::json finite(nlohmann::json j) {
  if (j.is_number_float()) return json_number(j.get<double>());
  if (j.is_structured())
    for (auto& v : j) v = finite(v);
  return j;
}

const std::string kNone = "n/a";

std::string pct(double v) { return std::isfinite(v) ? strf("%.2f%%", 100 * v) : kNone; }

std::string times(double v) { return std::isfinite(v) ? strf("%.1f×", v) : kNone; }

std::string times_with_interval(const RatioEstimate& e) {
  if (!std::isfinite(e.median)) return kNone;
  if (!std::isfinite(e.low) || !std::isfinite(e.high)) return times(e.median);
  return strf("%.1f× (%.1f–%.1f)", e.median, e.low, e.high);
}

// Teacher time / student time, round by round (paired_ratio); for profiles without rounds, the ratio
// of the medians. batch1: latency at batch 1, else time of a large batch (the throughput ratio).
RatioEstimate speed_ratio(const ModelProfile& teacher, const ModelProfile& student, bool batch1) {
  const auto& tn = batch1 ? teacher.b1_ms : teacher.b64_ms;
  const auto& sd = batch1 ? student.b1_ms : student.b64_ms;
  if (!tn.empty() && tn.size() == sd.size()) return paired_ratio(tn, sd);
  RatioEstimate e;
  e.median = batch1 ? ratio(teacher.latency_ms_b1, student.latency_ms_b1)
                    : ratio(student.throughput_b64, teacher.throughput_b64);
  return e;
}

std::string si(double v, const char* unit) {
  if (!std::isfinite(v) || v <= 0) return kNone;
  if (v >= 1e9) return strf("%.2f G%s", v / 1e9, unit);
  if (v >= 1e6) return strf("%.2f M%s", v / 1e6, unit);
  if (v >= 1e3) return strf("%.1f k%s", v / 1e3, unit);
  return strf("%.0f %s", v, unit);
}

// "87.10 ± 0.31% (3 seeds)" for several runs, "87.10%" for one.
std::string spread(const std::vector<double>& v) {
  if (v.empty()) return kNone;
  if (v.size() == 1) return pct(v[0]);
  return strf("%.2f ± %.2f%% (%zu seeds)", 100 * mean_of(v), 100 * std_of(v), v.size());
}

// Display width of UTF-8 text (code points; the report's symbols are all one column wide).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

using Row = std::vector<std::string>;  // label, teacher, distilled, baseline

std::vector<Row> comparison_rows(const DistillReport& r) {
  const ModelProfile& t = r.teacher.profile;
  const double teacher_acc = r.teacher.accuracy_mean();
  std::vector<Row> rows;
  auto per_model = [&](const std::string& label, auto cell) {
    rows.push_back({label, cell(r.teacher, true), cell(r.distilled, false), cell(r.baseline, false)});
  };
  per_model("architecture", [](const ReportModel& m, bool) { return m.type.empty() ? kNone : m.type; });
  per_model("test accuracy", [](const ReportModel& m, bool) { return spread(m.accuracy); });
  per_model("test macro-F1", [](const ReportModel& m, bool) { return spread(m.macro_f1); });
  per_model("validation accuracy (chose the checkpoint)",
            [](const ReportModel& m, bool) { return spread(m.valid_accuracy); });
  per_model("retention (accuracy / teacher's)", [&](const ReportModel& m, bool is_teacher) {
    return is_teacher ? std::string("—") : pct(ratio(m.accuracy_mean(), teacher_acc));
  });
  per_model("parameters", [](const ReportModel& m, bool) { return si(static_cast<double>(m.profile.parameters), ""); });
  per_model("checkpoint on disk", [](const ReportModel& m, bool) { return si(static_cast<double>(m.profile.disk_bytes), "B"); });
  per_model("FLOPs per example", [](const ReportModel& m, bool) {
    const std::string f = si(m.profile.flops_per_example, "FLOP");
    return f == kNone ? f : f + strf(" (%.1f tokens)", m.profile.mean_tokens);
  });
  per_model("CPU latency, batch 1 (median, p90)", [](const ReportModel& m, bool) {
    const ModelProfile& p = m.profile;
    return p.latency_ms_b1 > 0 ? strf("%.2f ms (p90 %.2f)", p.latency_ms_b1, p.latency_ms_b1_p90) : kNone;
  });
  per_model("throughput, batch 64", [](const ReportModel& m, bool) {
    const double v = m.profile.throughput_b64;
    return std::isfinite(v) && v > 0 ? strf(v >= 100 ? "%.0f ex/s" : "%.1f ex/s", v) : kNone;
  });
  auto vs_teacher = [&](const std::string& label, auto figure) {
    per_model(label, [&](const ReportModel& m, bool is_teacher) {
      return is_teacher ? std::string("—") : times(figure(m.profile));
    });
  };
  auto vs_teacher_speed = [&](const std::string& label, bool batch1) {
    per_model(label, [&](const ReportModel& m, bool is_teacher) {
      return is_teacher ? std::string("—") : times_with_interval(speed_ratio(t, m.profile, batch1));
    });
  };
  vs_teacher_speed("speed-up at batch 1 (95% interval)", true);
  vs_teacher_speed("throughput ratio, batch 64 (95% interval)", false);
  vs_teacher("compression on disk", [&](const ModelProfile& s) {
    return ratio(static_cast<double>(t.disk_bytes), static_cast<double>(s.disk_bytes));
  });
  vs_teacher("compression in parameters", [&](const ModelProfile& s) {
    return ratio(static_cast<double>(t.parameters), static_cast<double>(s.parameters));
  });
  vs_teacher("fewer FLOPs per example", [&](const ModelProfile& s) {
    return ratio(t.flops_per_example, s.flops_per_example);
  });
  return rows;
}

// One plain sentence on whether distillation helped beyond seed-to-seed variation.
std::string gain_sentence(const DistillReport& r) {
  const ReportFigures f = r.figures();
  if (!std::isfinite(f.gain)) return "Gain from distillation: n/a (a student has no result).";
  std::string s = strf("Gain from distillation: %+.2f points of accuracy (distilled %s, baseline %s). ",
                       100 * f.gain, spread(r.distilled.accuracy).c_str(), spread(r.baseline.accuracy).c_str());
  if (!f.gain_beyond_noise)
    return s + "Run-to-run noise cannot be estimated with fewer than 2 seeds per student, so whether the gain is "
               "larger than noise is not known.";
  s += strf("Run-to-run noise, 2 × the larger std: %.2f points. ", 100 * f.gain_noise);
  return s + (*f.gain_beyond_noise
                  ? "The distilled student beats the baseline by a margin larger than run-to-run noise."
                  : "The distilled student does NOT beat the baseline by a margin larger than run-to-run noise.");
}

std::string measured_line(const DistillReport& r) {
  const ModelProfile& p = r.teacher.profile;
  // The CPU is named either way (data preparation runs there); a GPU is named when the models ran on one.
  const std::string on = p.device == "cpu" ? "" : ", the models on " + p.device;
  return strf("Measured %s on %s with %d threads%s; batch-1 latency is the median (and 90th percentile) of %lld "
              "forward passes over real test examples after at least %lld warm-up passes and %.1f s, throughput "
              "the median of %lld batches of %lld examples; the models took turns pass by pass, and a speed-up is the "
              "median of the per-round ratios with a 95%% bootstrap interval over rounds (within this process: a "
              "separate run may differ by more).",
              r.date.c_str(), r.cpu.c_str(), r.threads, on.c_str(), static_cast<long long>(p.repeats),
              static_cast<long long>(p.warmup), p.warmup_seconds, static_cast<long long>(p.repeats),
              static_cast<long long>(p.large_batch));
}

}  // namespace

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  if (v.size() == 1) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

double seed_noise(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 2 || b.size() < 2) return NAN;
  return 2 * std::max(std_of(a), std_of(b));
}

std::string ReportModel::seed_label(size_t run) const {
  return run < seeds.size() ? "seed " + std::to_string(seeds[run]) : "run " + std::to_string(run + 1);
}

nlohmann::json ReportModel::to_json() const {
  nlohmann::json hist = nlohmann::json::array();
  for (const auto& h : histories) {
    nlohmann::json records = nlohmann::json::array();
    for (const auto& rec : h) records.push_back(rec.to_json());
    hist.push_back(records);
  }
  return finite({{"name", name}, {"type", type}, {"seeds", seeds}, {"accuracy", accuracy},
                 {"macro_f1", macro_f1}, {"valid_accuracy", valid_accuracy}, {"accuracy_mean", accuracy_mean()}, {"accuracy_std", accuracy_std()},
                 {"macro_f1_mean", macro_f1_mean()}, {"macro_f1_std", macro_f1_std()},
                 {"profile", profile.to_json()}, {"histories", hist}});
}

nlohmann::json ReportFigures::to_json() const {
  return finite({{"retention", {{"distilled", retention_distilled}, {"baseline", retention_baseline}}},
                 {"gain",
                  {{"accuracy", gain},
                   {"distilled_std", distilled_std},
                   {"baseline_std", baseline_std},
                   {"noise", gain_noise},
                   {"beyond_noise", gain_beyond_noise ? nlohmann::json(*gain_beyond_noise) : nlohmann::json()}}},
                 {"speedup_b1", {{"distilled", speedup_b1.to_json()}, {"baseline", baseline_speedup_b1.to_json()}}},
                 {"throughput_ratio_b64", throughput_ratio_b64.to_json()},
                 {"compression_disk", compression_disk},
                 {"compression_params", compression_params},
                 {"flops_ratio", flops_ratio}});
}

ReportFigures DistillReport::figures() const {
  ReportFigures f;
  const ModelProfile &t = teacher.profile, &s = distilled.profile;
  const double teacher_acc = teacher.accuracy_mean();
  f.retention_distilled = ratio(distilled.accuracy_mean(), teacher_acc);
  f.retention_baseline = ratio(baseline.accuracy_mean(), teacher_acc);
  f.gain = distilled.accuracy_mean() - baseline.accuracy_mean();
  f.distilled_std = distilled.accuracy_std();
  f.baseline_std = baseline.accuracy_std();
  f.gain_noise = seed_noise(distilled.accuracy, baseline.accuracy);
  if (std::isfinite(f.gain_noise)) f.gain_beyond_noise = f.gain > f.gain_noise;
  f.speedup_b1 = speed_ratio(t, s, true);
  f.baseline_speedup_b1 = speed_ratio(t, baseline.profile, true);
  f.throughput_ratio_b64 = speed_ratio(t, s, false);
  f.compression_disk = ratio(static_cast<double>(t.disk_bytes), static_cast<double>(s.disk_bytes));
  f.compression_params = ratio(static_cast<double>(t.parameters), static_cast<double>(s.parameters));
  f.flops_ratio = ratio(t.flops_per_example, s.flops_per_example);
  return f;
}

namespace {
nlohmann::json stages_json(const std::vector<ReportModel>& stages) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& m : stages) j.push_back(m.to_json());
  return j;
}
}  // namespace

nlohmann::json DistillReport::to_json() const {
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : target_results()) results.push_back(r.to_json());
  return finite({{"dataset", dataset}, {"valid_file", valid_file}, {"test_file", test_file}, {"data", data},
                 {"warnings", warnings}, {"cpu", cpu}, {"date", date}, {"threads", threads}, {"settings", settings},
                 {"teacher", teacher.to_json()}, {"distilled", distilled.to_json()}, {"baseline", baseline.to_json()},
                 {"figures", figures().to_json()}, {"declared_targets", targets_to_json(targets)},
                 {"targets", results}, {"stages", stages_json(stages)}});
}

const std::vector<TargetSpec>& distill_target_specs() {
  static const std::vector<TargetSpec> specs = {
      {"retention", "distilled student's test accuracy / the teacher's", TargetSense::kAtLeast},
      {"speedup_b1", "distilled student's speed-up over the teacher at batch 1", TargetSense::kAtLeast},
      {"throughput_ratio_b64", "distilled student's throughput / the teacher's at batch 64", TargetSense::kAtLeast},
      {"size_ratio", "teacher's checkpoint bytes / the student's", TargetSense::kAtLeast},
      {"params_ratio", "teacher's parameters / the student's", TargetSense::kAtLeast},
      {"flops_ratio", "teacher's FLOPs per example / the student's", TargetSense::kAtLeast},
      {"gain_beyond_noise", "distilled student beats the baseline by more than 2 × the larger seed std",
       TargetSense::kRequired},
  };
  return specs;
}

std::vector<TargetResult> DistillReport::target_results() const {
  const ReportFigures f = figures();
  auto interval = [](const RatioEstimate& e) {
    Measurement m;
    m.value = e.median;
    m.low = e.low;
    m.high = e.high;
    return m;
  };
  return evaluate_targets(targets, distill_target_specs(), [&](const std::string& key) {
    Measurement m;
    if (key == "retention") m.value = f.retention_distilled;
    if (key == "speedup_b1") m = interval(f.speedup_b1);
    if (key == "throughput_ratio_b64") m = interval(f.throughput_ratio_b64);
    if (key == "size_ratio") m.value = f.compression_disk;
    if (key == "params_ratio") m.value = f.compression_params;
    if (key == "flops_ratio") m.value = f.flops_ratio;
    if (key == "gain_beyond_noise" && f.gain_beyond_noise) {
      m.value = *f.gain_beyond_noise ? 1 : 0;
      m.detail = strf("gain %+.2f points vs noise %.2f", 100 * f.gain, 100 * f.gain_noise);
    }
    return m;
  });
}

std::string DistillReport::to_markdown() const {
  std::ostringstream out;
  out << "# Distillation report: " << dataset << "\n\n";
  out << "Figures on `" << test_file << "`, measured once with the checkpoints chosen on `" << valid_file << "`. "
      << measured_line(*this) << "\n\n";
  for (const auto& w : warnings) out << "**Warning: " << w << ".**\n\n";
  out << "| | " << teacher.name << " | " << distilled.name << " | " << baseline.name << " (α = 0) |\n";
  out << "|---|---|---|---|\n";
  for (const Row& row : comparison_rows(*this))
    out << "| " << row[0] << " | " << row[1] << " | " << row[2] << " | " << row[3] << " |\n";
  out << "\n" << gain_sentence(*this) << "\n\n";
  if (!stages.empty()) {
    // The figure after each stage, so that what each stage adds is read off one table.
    out << "## After each stage\n\n| stage | test accuracy | validation accuracy | retention |\n|---|---|---|---|\n";
    for (const auto& m : stages)
      out << "| " << m.name << " | " << seeds_cell(m.accuracy) << " | " << seeds_cell(m.valid_accuracy) << " | "
          << percent_cell(teacher.accuracy.empty() ? NAN : m.accuracy_mean() / teacher.accuracy_mean()) << " |\n";
    out << "\n";
  }
  const auto results = target_results();
  if (!results.empty()) out << "## Targets\n\n" << targets_markdown(results) << "\n";

  const size_t runs = std::max(distilled.accuracy.size(), baseline.accuracy.size());
  if (runs > 0) {
    out << "## Per seed\n\n| run | distilled test accuracy | distilled test macro-F1 | distilled valid accuracy | "
           "baseline test accuracy | baseline test macro-F1 | baseline valid accuracy |\n"
        << "|---|---|---|---|---|---|---|\n";
    auto at = [](const std::vector<double>& v, size_t i) { return i < v.size() ? pct(v[i]) : kNone; };
    for (size_t i = 0; i < runs; ++i)
      out << "| " << (i < distilled.seeds.size() ? distilled.seed_label(i) : baseline.seed_label(i)) << " | "
          << at(distilled.accuracy, i) << " | " << at(distilled.macro_f1, i) << " | " << at(distilled.valid_accuracy, i)
          << " | " << at(baseline.accuracy, i) << " | " << at(baseline.macro_f1, i) << " | "
          << at(baseline.valid_accuracy, i) << " |\n";
    out << "\n";
  }
  out << "## Plots\n\n![training and validation curves](curves.svg)\n\n"
      << "![accuracy vs. latency](accuracy_vs_latency.svg)\n\n";
  out << "## Settings\n\n```json\n" << finite(settings).dump(2) << "\n```\n";
  return out.str();
}

std::string DistillReport::to_table() const {
  std::vector<Row> rows = comparison_rows(*this);
  rows.insert(rows.begin(), Row{"", teacher.name, distilled.name, baseline.name + " (α = 0)"});
  std::vector<size_t> w(4, 0);
  for (const Row& row : rows)
    for (size_t c = 0; c < 4; ++c) w[c] = std::max(w[c], width(row[c]));
  std::ostringstream out;
  out << "Distillation report: " << dataset << " (figures on " << test_file << ", checkpoints chosen on "
      << valid_file << ")\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t c = 0; c < 4; ++c) {
      // Labels left-aligned, figures right-aligned, two spaces between columns.
      const std::string pad(w[c] - width(rows[i][c]), ' ');
      out << (c ? "  " : "") << (c == 0 ? rows[i][c] + pad : pad + rows[i][c]);
    }
    out << "\n";
    if (i == 0) out << std::string(w[0] + w[1] + w[2] + w[3] + 6, '-') << "\n";
  }
  out << gain_sentence(*this) << "\n" << measured_line(*this) << "\n";
  for (const auto& r : target_results()) {
    std::string measured = r.spec.sense == TargetSense::kRequired
                               ? (std::isfinite(r.measured.value) ? (r.measured.value >= 0.5 ? "yes" : "no") : kNone)
                               : strf("%.4g", r.measured.value);
    if (std::isfinite(r.measured.low)) measured += strf(" (%.4g–%.4g)", r.measured.low, r.measured.high);
    out << "target " << r.spec.key << ": " << measured << " → " << verdict_name(r.verdict) << "\n";
  }
  for (const auto& w : warnings) out << "warning: " << w << "\n";
  return out.str();
}

void write_report(const std::string& run_dir, const DistillReport& report) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw IoError(located(run_dir, "cannot create the run folder: " + ec.message()));
  const fs::path dir(run_dir);
  write_json_atomic((dir / "report.json").string(), report.to_json());
  write_file_atomic((dir / "report.md").string(), report.to_markdown());
  write_svg_and_png((dir / "curves.svg").string(), curves_svg(report));
  write_svg_and_png((dir / "accuracy_vs_latency.svg").string(), accuracy_latency_svg(report));
}

std::string percent_cell(double fraction) { return pct(fraction); }
std::string seeds_cell(const std::vector<double>& fractions) { return spread(fractions); }
std::string si_cell(double value, const char* unit) { return si(value, unit); }
std::string ratio_cell(const RatioEstimate& ratio) { return times_with_interval(ratio); }
RatioEstimate teacher_speedup(const ModelProfile& teacher, const ModelProfile& student, bool batch1) {
  return speed_ratio(teacher, student, batch1);
}
nlohmann::json finite_json(nlohmann::json j) { return finite(std::move(j)); }

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t first = line.find_first_not_of(" \t", colon + 1);
    if (first != std::string::npos) return line.substr(first);
  }
  return "unknown CPU";
}

std::string utc_now_iso() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace kd
