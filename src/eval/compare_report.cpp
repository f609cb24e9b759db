#include "kd/eval/compare_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>

#include "kd/data/data_config.h"
#include "kd/data/text_dataset.h"
#include "kd/error.h"
#include "kd/eval/png_render.h"
#include "kd/eval/svg_chart.h"
#include "kd/io/atomic_file.h"
#include "kd/io/config.h"
#include "kd/models/classifier_registry.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// a / b, or NaN where either side was not measured.
double ratio(double a, double b) { return std::isfinite(a) && std::isfinite(b) && a > 0 && b > 0 ? a / b : NAN; }

// A list of numbers under `key` of one model's section of report.json (null: NaN, as report.json
// writes a figure it could not measure); absent: none.
std::vector<double> numbers(const nlohmann::json& model, const std::string& key, const std::string& where) {
  std::vector<double> out;
  if (!model.contains(key)) return out;
  const nlohmann::json& list = model.at(key);
  if (!list.is_array()) throw FormatError(located(where, "'" + key + "' is not a list of numbers"));
  for (const auto& x : list) {
    if (!x.is_number() && !x.is_null())
      throw FormatError(located(where, "'" + key + "' holds a value that is not a number"));
    out.push_back(x.is_null() ? NAN : x.get<double>());
  }
  return out;
}

// One model's section of report.json ("teacher", "distilled", "baseline"): its accuracies per seed.
ReportModel read_model(const nlohmann::json& report, const std::string& key, const std::string& path) {
  const std::string where = path + ": " + key;
  if (!report.contains(key) || !report.at(key).is_object())
    throw FormatError(located(path, "has no '" + key + "' section", "is it a report.json written by kd distill?"));
  const nlohmann::json& j = report.at(key);
  ReportModel m;
  try {
    m.name = j.value("name", key);
    m.type = j.value("type", std::string());
    m.seeds = j.value("seeds", std::vector<int64_t>{});
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(located(where, std::string("malformed: ") + e.what()));
  }
  m.accuracy = numbers(j, "accuracy", where);
  m.macro_f1 = numbers(j, "macro_f1", where);
  m.valid_accuracy = numbers(j, "valid_accuracy", where);
  return m;
}

std::string json_string(const nlohmann::json& j, const std::string& key, const std::string& where) {
  if (!j.contains(key) || !j.at(key).is_string() || j.at(key).get<std::string>().empty())
    throw FormatError(located(where, "has no '" + key + "' (a non-empty string)"));
  return j.at(key).get<std::string>();
}

// How the table and chart name each run: its folder name, or the path as given where two runs share one.
void name_runs(std::vector<CompareRun>& runs) {
  std::set<std::string> names;
  auto base = [](const CompareRun& r) { return fs::path(r.dir).lexically_normal().filename().string(); };
  bool unique = true;
  for (const auto& r : runs) unique = names.insert(base(r)).second && unique;
  for (auto& r : runs) r.name = unique && !base(r).empty() ? base(r) : r.dir;
}

std::string latency_cell(const ModelProfile& p) {
  return p.latency_ms_b1 > 0 ? strf("%.2f ms (p90 %.2f)", p.latency_ms_b1, p.latency_ms_b1_p90) : "n/a";
}

std::string throughput_cell(const ModelProfile& p) {
  const double v = p.throughput_b64;
  return std::isfinite(v) && v > 0 ? strf(v >= 100 ? "%.0f ex/s" : "%.1f ex/s", v) : "n/a";
}

// "(95% interval 0.80–0.90×)" where the ratio has one.
std::string interval_clause(const RatioEstimate& e) {
  return std::isfinite(e.low) && std::isfinite(e.high) ? strf(", 95%% interval %.2f–%.2f×", e.low, e.high) : "";
}

// "87.84 ± 0.70%" over several seeds, "87.84%" for one: the figures a verdict sentence quotes.
std::string mean_std(const ReportModel& m) {
  return m.accuracy.size() > 1 ? strf("%.2f ± %.2f%%", 100 * m.accuracy_mean(), 100 * m.accuracy_std())
                               : percent_cell(m.accuracy_mean());
}

// One model of the comparison: the students of the runs, the teacher once.
struct Entry {
  const ReportModel* model;
  std::string label, run;
};

std::vector<Entry> entries(const CompareReport& r) {
  std::vector<Entry> out = {{&r.teacher, "teacher", "—"}};
  for (const auto& run : r.runs) {
    out.push_back({&run.distilled, "distilled student", run.name});
    if (run.has_baseline()) out.push_back({&run.baseline, "baseline student (α = 0)", run.name});
  }
  return out;
}

nlohmann::json model_json(const CompareReport& r, const ReportModel& m, bool is_teacher) {
  nlohmann::json j = m.to_json();
  j.erase("histories");  // the runs' own report.json has the curves
  if (!is_teacher) {
    j["retention"] = ratio(m.accuracy_mean(), r.teacher.accuracy_mean());
    j["speedup_b1"] = teacher_speedup(r.teacher.profile, m.profile, true).to_json();
    j["throughput_ratio_b64"] = teacher_speedup(r.teacher.profile, m.profile, false).to_json();
  }
  return j;
}

// Each run a hue: the distilled student in the dark shade, its baseline in the light one (tab20 pairs).
const char* const kRunShades[][2] = {{"#1f77b4", "#aec7e8"}, {"#ff7f0e", "#ffbb78"}, {"#d62728", "#ff9896"},
                                     {"#9467bd", "#c5b0d5"}, {"#8c564b", "#c49c94"}, {"#e377c2", "#f7b6d2"},
                                     {"#17becf", "#9edae5"}};
constexpr const char* kTeacherColor = "#2ca02c";

}  // namespace

CompareRun read_compare_run(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError(located(dir, fs::exists(dir, ec) ? "is not a folder" : "no such run folder",
                          "give folders written by kd distill"));
  CompareRun run;
  run.dir = dir;
  const std::string report_path = (fs::path(dir) / "report.json").string();
  const nlohmann::json report = read_json(report_path);  // IoError naming it when missing
  if (!report.is_object()) throw FormatError(located(report_path, "is not a JSON object"));
  const nlohmann::json settings = report.value("settings", nlohmann::json::object());
  run.teacher_dir = json_string(settings, "teacher", report_path + ": settings");
  run.test_file = json_string(report, "test_file", report_path);
  run.valid_file = report.value("valid_file", std::string());
  const ReportModel teacher = read_model(report, "teacher", report_path);
  if (teacher.accuracy.empty()) throw FormatError(located(report_path + ": teacher", "has no test accuracy"));
  run.teacher_accuracy = teacher.accuracy.front();
  run.distilled = read_model(report, "distilled", report_path);
  if (run.distilled.accuracy.empty())
    throw FormatError(located(report_path + ": distilled", "has no test accuracy", "did the run finish?"));
  run.student_dir = (fs::path(dir) / "student").string();
  if (report.contains("baseline")) {
    run.baseline = read_model(report, "baseline", report_path);
    if (!run.baseline.accuracy.empty()) {
      // kd distill measures the first seed's baseline, as it is listed in the report.
      const auto& seeds = run.baseline.seeds.empty() ? run.distilled.seeds : run.baseline.seeds;
      if (seeds.empty()) throw FormatError(located(report_path + ": baseline", "names no seeds"));
      run.baseline_dir = (fs::path(dir) / ("seed-" + std::to_string(seeds.front())) / "baseline" / "best").string();
    }
  }

  // The test file's columns are the run's (config.yaml's data section, as resolved by kd distill).
  const std::string config_path = (fs::path(dir) / "config.yaml").string();
  Config config = Config::load(config_path);
  const DataConfig data = DataConfig::from(config.root().child("data"));
  if (data.test.empty())
    throw ConfigError(located(config_path + ": data.test", "is empty: the run has no test file to compare on",
                              "kd compare takes runs whose figures are on a data.test file"));
  run.table = data.table;
  for (const std::string& folder : {run.student_dir, run.baseline_dir})
    if (!folder.empty() && !fs::is_directory(folder, ec))
      throw IoError(
          located(folder, "no such model folder", "was the run interrupted? kd distill --resume finishes it"));
  return run;
}

void check_comparable(const std::vector<CompareRun>& runs) {
  if (runs.empty()) throw ConfigError(located("--runs", "needs at least one run folder"));
  const CompareRun& first = runs.front();
  for (size_t i = 1; i < runs.size(); ++i) {
    const CompareRun& r = runs[i];
    for (size_t k = 0; k < i; ++k)
      if (same_file(r.dir, runs[k].dir))
        throw ConfigError(located(r.dir, "is given twice in --runs (also as " + runs[k].dir + ")"));
    if (!same_file(r.teacher_dir, first.teacher_dir))
      throw ConfigError(located(
          r.dir, "its teacher " + r.teacher_dir + " differs from " + first.dir + "'s teacher " + first.teacher_dir,
          "kd compare puts runs of one teacher side by side"));
    if (!same_file(r.test_file, first.test_file))
      throw ConfigError(located(
          r.dir, "its test file " + r.test_file + " differs from " + first.dir + "'s test file " + first.test_file,
          "kd compare puts runs measured on one test file side by side"));
  }
}

nlohmann::json StudentVerdict::to_json() const {
  return finite_json({{"run", run},
                      {"reference", reference},
                      {"accuracy_gap_points", 100 * accuracy_gap},
                      {"noise_points", 100 * noise},
                      {"latency_ratio_b1", latency_ratio.to_json()},
                      {"measured", measured},
                      {"more_accurate", more_accurate},
                      {"no_slower", no_slower},
                      {"dominates", dominates()},
                      {"sentence", sentence}});
}

StudentVerdict compare_students(const std::string& run, const ReportModel& candidate, const std::string& reference,
                                const ReportModel& reference_model) {
  StudentVerdict v;
  v.run = run;
  v.reference = reference;
  v.accuracy_gap = candidate.accuracy_mean() - reference_model.accuracy_mean();
  v.noise = seed_noise(candidate.accuracy, reference_model.accuracy);
  // The candidate's time over the reference's, round by round: the same pairing as a teacher speed-up.
  v.latency_ratio = teacher_speedup(candidate.profile, reference_model.profile, true);
  const std::string who = run + "'s distilled student", whose = reference + "'s";
  v.measured = std::isfinite(v.accuracy_gap) && std::isfinite(v.latency_ratio.median);
  if (!v.measured) {
    v.sentence =
        who + " cannot be compared with " + whose + ": " +
        (std::isfinite(v.accuracy_gap) ? "a batch-1 latency was not measured." : "a test accuracy is missing.");
    return v;
  }
  v.more_accurate = v.accuracy_gap > 0;
  v.no_slower = v.latency_ratio.median <= 1;
  const double gap = 100 * v.accuracy_gap;
  std::string figures = mean_std(candidate) + " vs " + mean_std(reference_model);
  if (std::isfinite(v.noise))
    figures += strf("; %s seed noise, 2 × the larger std: %.2f points",
                    std::abs(v.accuracy_gap) > v.noise ? "beyond" : "within", 100 * v.noise);
  std::string accuracy;
  if (v.more_accurate)
    accuracy = strf("is %.2f points more accurate than %s (%s)", gap, whose.c_str(), figures.c_str());
  else if (v.accuracy_gap == 0)
    accuracy = "is exactly as accurate as " + whose + " (" + figures + "), not more,";
  else
    accuracy = strf("falls %.2f points short of %s accuracy (%s)", -gap, whose.c_str(), figures.c_str());
  const std::string interval = interval_clause(v.latency_ratio);
  const std::string latency = v.no_slower
                                  ? strf("at no more batch-1 latency (%.2f× %s latency%s)", v.latency_ratio.median,
                                         whose.c_str(), interval.c_str())
                                  : strf("%s %.2f× slower at batch 1 (median of the per-round ratios%s)",
                                         v.more_accurate ? "but" : "and is", v.latency_ratio.median, interval.c_str());
  v.sentence = who + " " + accuracy + " " + latency + ".";
  return v;
}

std::vector<StudentVerdict> CompareReport::verdicts() const {
  std::vector<StudentVerdict> out;
  if (reference < 0 || reference >= static_cast<int>(runs.size())) return out;
  const CompareRun& ref = runs[static_cast<size_t>(reference)];
  for (size_t i = 0; i < runs.size(); ++i)
    if (static_cast<int>(i) != reference)
      out.push_back(compare_students(runs[i].name, runs[i].distilled, ref.name, ref.distilled));
  return out;
}

nlohmann::json CompareReport::to_json() const {
  nlohmann::json run_list = nlohmann::json::array();
  for (const auto& r : runs) {
    nlohmann::json j = {{"name", r.name},
                        {"dir", r.dir},
                        {"teacher_accuracy", json_number(r.teacher_accuracy)},
                        {"student_dir", r.student_dir},
                        {"distilled", model_json(*this, r.distilled, false)}};
    if (r.has_baseline()) {
      j["baseline_dir"] = r.baseline_dir;
      j["baseline"] = model_json(*this, r.baseline, false);
    }
    run_list.push_back(j);
  }
  nlohmann::json verdict_list = nlohmann::json::array();
  for (const auto& v : verdicts()) verdict_list.push_back(v.to_json());
  return {{"date", date},
          {"cpu", cpu},
          {"threads", threads},
          {"device", teacher.profile.device},
          {"teacher_dir", teacher_dir},
          {"test_file", test_file},
          {"reference", reference >= 0 ? nlohmann::json(runs[static_cast<size_t>(reference)].name) : nlohmann::json()},
          {"teacher", model_json(*this, teacher, true)},
          {"runs", run_list},
          {"verdicts", verdict_list},
          {"warnings", warnings}};
}

std::string CompareReport::to_markdown() const {
  const ModelProfile& t = teacher.profile;
  std::ostringstream out;
  out << "# Comparison of distillation runs\n\n";
  out << "Teacher `" << teacher_dir << "`, figures on `" << test_file
      << "`. Test accuracies are each run's own (its report.json: mean ± std over its seeds; the baseline is the "
         "same student trained without the teacher, α = 0). Sizes and speeds were measured by kd compare, every "
         "model in one process, "
      << date << ", on " << cpu << " with " << threads << " threads"
      << (t.device == "cpu" ? "" : ", the models on " + t.device)
      << strf(
             ": batch-1 latency is the median (and 90th percentile) of %lld passes over real test rows after at "
             "least %lld warm-up passes and %.1f s, throughput the median of %lld batches of %lld; the models took "
             "turns pass by pass, and a ratio is the median of the per-round ratios with a 95%% bootstrap interval "
             "over rounds. A run's baseline is its first seed's.",
             static_cast<long long>(t.repeats), static_cast<long long>(t.warmup), t.warmup_seconds,
             static_cast<long long>(t.repeats), static_cast<long long>(t.large_batch))
      << "\n\n";
  for (const auto& w : warnings) out << "**Warning: " << w << ".**\n\n";
  out << "| model | run | architecture | parameters | FLOPs per example (non-embedding) | test accuracy | retention | "
         "latency, batch 1 (median, p90) | speed-up at batch 1 vs teacher (95% interval) | throughput, batch 64 |\n"
      << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Entry& e : entries(*this)) {
    const ReportModel& m = *e.model;
    const bool is_teacher = e.model == &teacher;
    out << "| " << e.label << " | " << e.run << " | " << (m.type.empty() ? "n/a" : m.type) << " | "
        << si_cell(static_cast<double>(m.profile.parameters), "") << " | "
        << si_cell(m.profile.flops_per_example, "FLOP") << " | " << seeds_cell(m.accuracy) << " | "
        << (is_teacher ? "—" : percent_cell(ratio(m.accuracy_mean(), teacher.accuracy_mean()))) << " | "
        << latency_cell(m.profile) << " | " << (is_teacher ? "—" : ratio_cell(teacher_speedup(t, m.profile, true)))
        << " | " << throughput_cell(m.profile) << " |\n";
  }
  const auto vs = verdicts();
  if (reference >= 0) {
    out << "\n## Against the reference: " << runs[static_cast<size_t>(reference)].name << "\n\n";
    if (vs.empty()) out << "No other run to compare.\n";
    for (const auto& v : vs) out << "- " << v.sentence << "\n";
  }
  out << "\n## Runs\n\n| run | folder | seeds | student | baseline |\n|---|---|---|---|---|\n";
  for (const auto& r : runs) {
    std::string seeds;
    for (int64_t s : r.distilled.seeds) seeds += (seeds.empty() ? "" : ", ") + std::to_string(s);
    out << "| " << r.name << " | `" << r.dir << "` | " << (seeds.empty() ? "n/a" : seeds) << " | `" << r.student_dir
        << "` | " << (r.has_baseline() ? "`" + r.baseline_dir + "`" : "none") << " |\n";
  }
  out << "\n![accuracy vs. latency](accuracy_vs_latency.svg)\n";
  return out.str();
}

std::string compare_svg(const CompareReport& report) {
  ScatterChart c;
  c.title = "Accuracy vs. latency: " + std::to_string(report.runs.size()) + " runs, one teacher";
  c.x_label = strf("latency at batch 1, ms (log scale, %d threads)", report.threads);
  c.y_label = "test accuracy (%, ± one std over seeds)";
  c.log_x = true;
  c.width = 900;
  c.height = 480;
  auto add = [&](const ReportModel& m, const std::string& label, const char* color) {
    const double acc = m.accuracy_mean();
    ScatterPoint p;
    p.label = label + (std::isfinite(acc) ? strf(" %.2f%%", 100 * acc) : "");
    p.x = m.profile.latency_ms_b1;
    p.y = 100 * acc;
    p.y_err = m.accuracy.size() > 1 ? 100 * m.accuracy_std() : 0;
    p.color = color;
    c.points.push_back(p);
  };
  add(report.teacher, "teacher", kTeacherColor);
  const size_t shades = sizeof kRunShades / sizeof kRunShades[0];
  for (size_t i = 0; i < report.runs.size(); ++i) {
    const CompareRun& r = report.runs[i];
    add(r.distilled, r.name + ": distilled", kRunShades[i % shades][0]);
    if (r.has_baseline()) add(r.baseline, r.name + ": baseline", kRunShades[i % shades][1]);
  }
  return scatter_chart_svg(c);
}

void write_compare(const std::string& out_dir, const CompareReport& report) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw IoError(located(out_dir, "cannot create the output folder: " + ec.message()));
  const fs::path dir(out_dir);
  write_json_atomic((dir / "compare.json").string(), finite_json(report.to_json()));
  write_file_atomic((dir / "compare.md").string(), report.to_markdown());
  write_svg_and_png((dir / "accuracy_vs_latency.svg").string(), compare_svg(report));
}

CompareReport compare_runs(const CompareOptions& options) {
  if (options.runs.empty()) throw ConfigError(located("--runs", "needs at least one run folder"));
  CompareReport report;
  for (const auto& dir : options.runs) report.runs.push_back(read_compare_run(dir));
  check_comparable(report.runs);
  name_runs(report.runs);
  if (!options.reference.empty()) {
    for (size_t i = 0; i < report.runs.size() && report.reference < 0; ++i)
      if (same_file(options.reference, report.runs[i].dir)) report.reference = static_cast<int>(i);
    if (report.reference < 0)
      throw ConfigError(located("--reference " + options.reference, "is not one of the --runs folders"));
  }
  const CompareRun& first = report.runs.front();
  report.teacher_dir = first.teacher_dir;
  report.test_file = first.test_file;
  report.teacher.name = "teacher";
  report.teacher.accuracy = {first.teacher_accuracy};
  for (const auto& r : report.runs)
    if (std::abs(r.teacher_accuracy - first.teacher_accuracy) > 1e-9)
      report.warnings.push_back(
          strf("the teacher's test accuracy is %.2f%% in %s's report and %.2f%% in %s's: the "
               "table shows the first; was the teacher folder changed between the runs?",
               100 * first.teacher_accuracy, first.name.c_str(), 100 * r.teacher_accuracy, r.name.c_str()));

  // Every model reads the same test rows through its own tokenizer and max_length.
  const std::vector<TextRow> rows = read_table(first.test_file, first.table);
  struct Measured {
    std::unique_ptr<TextClassifier> model;
    std::unique_ptr<TextDataset> sample;
    std::string dir;
    ReportModel* into;
  };
  std::vector<Measured> models;
  auto add = [&](const std::string& dir, ReportModel& into) {
    log_info("loading " + dir);
    Measured m{load_classifier(dir), nullptr, dir, &into};
    m.model->module().to(options.device);
    m.sample = std::make_unique<TextDataset>(rows, m.model->tokenizer(), m.model->labels(), m.model->max_length(),
                                             first.test_file);
    into.type = m.model->type();
    models.push_back(std::move(m));
  };
  add(report.teacher_dir, report.teacher);
  for (auto& r : report.runs) {
    add(r.student_dir, r.distilled);
    if (r.has_baseline()) add(r.baseline_dir, r.baseline);
  }
  std::vector<ProfileTarget> targets;
  for (const auto& m : models) targets.push_back({m.model.get(), m.dir, m.sample.get()});
  log_info(strf("measuring %zu models in turns on %zu rows of %s (%d threads, device %s)", models.size(), rows.size(),
                first.test_file.c_str(), torch::get_num_threads(), options.device.str().c_str()));
  const auto profiles = profile_models(targets, *models.front().sample, options.speed);
  for (size_t i = 0; i < models.size(); ++i) models[i].into->profile = profiles[i];
  report.date = utc_now_iso();
  report.cpu = cpu_model_name();
  report.threads = torch::get_num_threads();
  return report;
}

}  // namespace kd
