#include "kd/eval/lm_report.h"

#include <filesystem>

#include "kd/eval/model_profile.h"
#include "kd/eval/svg_chart.h"
#include "kd/io/atomic_file.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

double num(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : NAN;
}

double ratio(double a, double b) { return (std::isfinite(a) && std::isfinite(b) && b != 0) ? a / b : NAN; }

std::string count(double v) {
  if (!std::isfinite(v)) return "–";
  if (v >= 1e6) return strf("%.2f M", v / 1e6);
  if (v >= 1e3) return strf("%.1f k", v / 1e3);
  return strf("%.0f", v);
}
std::string mib(double bytes) { return bytes > 0 ? strf("%.1f MiB", bytes / (1024.0 * 1024.0)) : "–"; }
std::string fixed(double v, const char* fmt = "%.2f") { return std::isfinite(v) ? strf(fmt, v) : "–"; }
std::string yes_no(bool b) { return b ? "**met**" : "**not met**"; }

}  // namespace

nlohmann::json LmReportModel::to_json() const {
  nlohmann::json c = nlohmann::json::array();
  for (const auto& p : curve)
    c.push_back({{"step", p.step}, {"tokens", p.tokens}, {"train_loss", json_number(p.train_loss)},
                 {"eval_perplexity", json_number(p.eval_perplexity)}});
  return {{"name", name}, {"path", path}, {"profile", profile.to_json()}, {"perplexity", perplexity.to_json()},
          {"curve", c}, {"train_seconds", train_seconds}};
}

LmReportModel LmReportModel::from_json(const nlohmann::json& j) {
  LmReportModel m;
  m.name = j.value("name", "");
  m.path = j.value("path", "");
  m.train_seconds = num(j, "train_seconds");
  for (const auto& p : j.value("curve", nlohmann::json::array()))
    m.curve.push_back({p.value("step", int64_t{0}), p.value("tokens", int64_t{0}), num(p, "train_loss"),
                       num(p, "eval_perplexity")});
  return m;
}

double LmReport::generate_speedup() const {
  return ratio(student.profile.generate_tokens_per_s, teacher.profile.generate_tokens_per_s);
}
double LmReport::prefill_speedup() const {
  return ratio(student.profile.prefill_tokens_per_s, teacher.profile.prefill_tokens_per_s);
}
double LmReport::non_embedding_ratio() const {
  return ratio(static_cast<double>(student.profile.non_embedding_parameters),
               static_cast<double>(teacher.profile.non_embedding_parameters));
}

nlohmann::json LmReport::to_json() const {
  nlohmann::json j = {{"cpu", cpu}, {"date", date}, {"threads", threads}, {"train_file", train_file},
                      {"eval_file", eval_file}, {"train_tokens", train_tokens}, {"epochs", epochs},
                      {"settings", settings},     {"teacher", teacher.to_json()}, {"student", student.to_json()}};
  if (has_baseline) j["baseline"] = baseline.to_json();
  j["figures"] = {{"generate_speedup", json_number(generate_speedup())},
                  {"prefill_speedup", json_number(prefill_speedup())},
                  {"non_embedding_ratio", json_number(non_embedding_ratio())},
                  {"baseline_generate_speedup",
                   json_number(has_baseline ? ratio(baseline.profile.generate_tokens_per_s,
                                                    teacher.profile.generate_tokens_per_s)
                                            : NAN)}};
  j["targets"] = {{"student_at_most_quarter_non_embedding", non_embedding_ratio() <= 0.25},
                  {"generation_speedup_at_least_3", generate_speedup() >= 3.0}};
  if (has_baseline)
    j["targets"]["student_perplexity_below_baseline"] = student.perplexity.perplexity < baseline.perplexity.perplexity;
  return j;
}

std::string LmReport::to_markdown() const {
  std::string md = "# Causal-LM distillation report\n\n";
  md += strf("%s, %d threads, %s. Students trained on %lld tokens of `%s` for %lld epoch%s; perplexity on %lld "
             "tokens of `%s` (%lld scored).\n\n",
             cpu.c_str(), threads, date.c_str(), static_cast<long long>(train_tokens), train_file.c_str(),
             static_cast<long long>(epochs), epochs == 1 ? "" : "s",
             static_cast<long long>(teacher.perplexity.input_tokens), eval_file.c_str(),
             static_cast<long long>(teacher.perplexity.scored_tokens));
  md += "| model | layers | parameters | non-embedding | size on disk | perplexity | eval tok/s | prefill tok/s (b1) | "
        "generation tok/s (b1) | generation speed-up |\n|---|---|---|---|---|---|---|---|---|---|\n";
  std::vector<const LmReportModel*> rows = {&teacher, &student};
  if (has_baseline) rows.push_back(&baseline);
  for (const auto* m : rows) {
    const double sp = ratio(m->profile.generate_tokens_per_s, teacher.profile.generate_tokens_per_s);
    md += strf("| %s | %lld | %s | %s | %s | %s | %s | %s | %s | %s |\n", m->name.c_str(),
               static_cast<long long>(m->profile.layers), count(m->profile.parameters).c_str(),
               count(m->profile.non_embedding_parameters).c_str(), mib(m->profile.disk_bytes).c_str(),
               fixed(m->perplexity.perplexity).c_str(), fixed(m->perplexity.tokens_per_second, "%.0f").c_str(),
               fixed(m->profile.prefill_tokens_per_s, "%.0f").c_str(),
               fixed(m->profile.generate_tokens_per_s, "%.1f").c_str(), fixed(sp, "%.2f×").c_str());
  }
  md += strf("\nSpeed: batch 1 with the KV cache, a %lld-token prompt then %lld greedy tokens; median of %lld runs "
             "after %lld warm-up, %d threads.\n\n",
             static_cast<long long>(teacher.profile.prompt_tokens), static_cast<long long>(teacher.profile.new_tokens),
             static_cast<long long>(teacher.profile.repeats), static_cast<long long>(teacher.profile.warmup),
             teacher.profile.threads);
  md += "## Targets\n\n";
  md += strf("- student non-embedding parameters ≤ 1/4 of the teacher's: %.3f of them — %s\n", non_embedding_ratio(),
             yes_no(non_embedding_ratio() <= 0.25).c_str());
  if (has_baseline)
    md += strf("- distilled student perplexity below the baseline's (same tokens, no teacher): %.2f vs %.2f — %s\n",
               student.perplexity.perplexity, baseline.perplexity.perplexity,
               yes_no(student.perplexity.perplexity < baseline.perplexity.perplexity).c_str());
  md += strf("- generation ≥ 3× the teacher's tokens/s at batch 1: %.2f× — %s\n", generate_speedup(),
             yes_no(generate_speedup() >= 3.0).c_str());
  md += strf("\nTraining time: student %.1f min", student.train_seconds / 60);
  if (has_baseline) md += strf(", baseline %.1f min", baseline.train_seconds / 60);
  md += ".\n\n![training curves](curves.svg)\n\n## Settings\n\n```json\n" + settings.dump(2) + "\n```\n";
  return md;
}

std::string lm_curves_svg(const LmReport& r) {
  LineChart loss{"Training loss (distilled: distillation objective; baseline: cross-entropy)", "training tokens",
                 "mean loss since previous point", {}};
  LineChart ppl{"Held-out perplexity during training", "training tokens", "perplexity", {}};
  auto add = [&](const LmReportModel& m, const std::string& color, bool dashed) {
    SvgSeries l{m.name, {}, color, dashed}, p{m.name, {}, color, dashed};
    for (const auto& c : m.curve) {
      if (std::isfinite(c.train_loss)) l.points.emplace_back(static_cast<double>(c.tokens), c.train_loss);
      if (std::isfinite(c.eval_perplexity)) p.points.emplace_back(static_cast<double>(c.tokens), c.eval_perplexity);
    }
    loss.series.push_back(l);
    ppl.series.push_back(p);
  };
  add(r.student, "#1f77b4", false);
  if (r.has_baseline) add(r.baseline, "#d62728", true);
  return stacked_line_charts_svg({loss, ppl});
}

void write_lm_report(const std::string& run_dir, const LmReport& report) {
  fs::create_directories(run_dir);
  write_json_atomic((fs::path(run_dir) / "report.json").string(), report.to_json());
  write_file_atomic((fs::path(run_dir) / "report.md").string(), report.to_markdown());
  write_file_atomic((fs::path(run_dir) / "curves.svg").string(), lm_curves_svg(report));
}

}  // namespace kd
