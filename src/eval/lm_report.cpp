#include "kd/eval/lm_report.h"

#include <filesystem>

#include "kd/eval/model_profile.h"
#include "kd/eval/png_render.h"
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

}  // namespace

const std::vector<TargetSpec>& lm_target_specs() {
  static const std::vector<TargetSpec> specs = {
      {"non_embedding_ratio", "student / teacher non-embedding parameters", TargetSense::kAtMost},
      {"perplexity_below_baseline", "distilled student perplexity below the baseline's (same tokens, no teacher)",
       TargetSense::kRequired},
      {"generate_speedup", "batch-1 generation speed-up of the student over the teacher (KV cache)",
       TargetSense::kAtLeast},
  };
  return specs;
}

std::vector<DeclaredTarget> read_lm_targets(ConfigNode targets_section) {
  return read_targets(targets_section, lm_target_specs());
}

nlohmann::json LmHeldOutSlice::to_json() const {
  if (source.empty()) return {{"source", nullptr}};
  return {{"source", source}, {"file", file}, {"token_begin", begin}, {"token_end", end}, {"tokens", end - begin}};
}

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
  // The median of per-round ratios when the models were timed in turns; else the ratio of medians.
  const RatioEstimate r = paired_ratio(teacher.profile.decode_ms, student.profile.decode_ms);
  if (r.rounds > 0) return r.median;
  return ratio(student.profile.generate_tokens_per_s, teacher.profile.generate_tokens_per_s);
}
double LmReport::prefill_speedup() const {
  return ratio(student.profile.prefill_tokens_per_s, teacher.profile.prefill_tokens_per_s);
}
double LmReport::non_embedding_ratio() const {
  return ratio(static_cast<double>(student.profile.non_embedding_parameters),
               static_cast<double>(teacher.profile.non_embedding_parameters));
}

Measurement LmReport::measure(const std::string& key) const {
  Measurement m;
  if (key == "non_embedding_ratio") {
    m.value = non_embedding_ratio();
    m.detail = "student " + count(static_cast<double>(student.profile.non_embedding_parameters)) + " vs teacher " +
               count(static_cast<double>(teacher.profile.non_embedding_parameters));
  } else if (key == "perplexity_below_baseline") {
    const double s = student.perplexity.perplexity, b = has_baseline ? baseline.perplexity.perplexity : NAN;
    if (!has_baseline) {
      m.detail = "no baseline trained";
    } else if (std::isfinite(s) && std::isfinite(b) && b > 0) {
      m.value = s < b ? 1.0 : 0.0;
      m.detail = strf("%.2f vs %.2f", s, b);
    } else {
      m.detail = "perplexity missing";
    }
  } else if (key == "generate_speedup") {
    // Teacher time / student time of each round (measured in turns), with its interval over rounds.
    const RatioEstimate r = paired_ratio(teacher.profile.decode_ms, student.profile.decode_ms);
    if (r.rounds > 0) {
      m.value = generate_speedup();
      m.low = r.low;
      m.high = r.high;
      m.detail = strf("median of %lld paired rounds, 95%% interval %.2f-%.2f", static_cast<long long>(r.rounds),
                      r.low, r.high);
    } else {  // a report from before the rounds were kept: one median per model, no spread
      m.value = generate_speedup();
      m.detail = strf("median of %lld run%s per model", static_cast<long long>(teacher.profile.repeats),
                      teacher.profile.repeats == 1 ? "" : "s");
    }
  }
  return m;
}

std::vector<TargetResult> LmReport::target_results() const {
  return evaluate_targets(targets, lm_target_specs(), [this](const std::string& key) { return measure(key); });
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
  j["declared_targets"] = targets_to_json(targets);
  j["targets"] = nlohmann::json::array();
  for (const auto& r : target_results()) j["targets"].push_back(r.to_json());
  j["held_out"] = held_out.to_json();
  j["eval_measured"] = "once, after training: data.eval is scored for this report only, nothing during the run "
                       "looks at it";
  j["warnings"] = warnings;
  return j;
}

std::string LmReport::to_markdown() const {
  std::string md = "# Causal-LM distillation report\n\n";
  for (const auto& w : warnings) md += "> **Warning: " + w + "**\n\n";
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
  md += "## Held-out data\n\n";
  if (held_out.source.empty())
    md += "- Training curves: no held-out perplexity measured.\n";
  else
    md += strf("- Training curves: held-out perplexity on tokens %lld–%lld of `%s` (%s).\n",
               static_cast<long long>(held_out.begin), static_cast<long long>(held_out.end), held_out.file.c_str(),
               held_out.source.c_str());
  md += "- Perplexity above: `" + eval_file + "`, measured once after training, for this report only.\n";
  md += "\n## Targets\n\n";
  const std::string table = targets_markdown(target_results());
  md += table.empty() ? std::string("No targets declared (report.targets in the config).\n") : table;
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
  write_svg_and_png((fs::path(run_dir) / "curves.svg").string(), lm_curves_svg(report));
}

}  // namespace kd
