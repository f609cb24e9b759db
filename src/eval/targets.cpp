#include "kd/eval/targets.h"

#include "kd/eval/model_profile.h"
#include "kd/util/log.h"

namespace kd {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kMet: return "met";
    case Verdict::kNotMet: return "not met";
    case Verdict::kWithinNoise: return "within noise";
    case Verdict::kNotMeasured: break;
  }
  return "not measured";
}

namespace {

const char* sense_symbol(TargetSense s) {
  switch (s) {
    case TargetSense::kAtLeast: return "≥";
    case TargetSense::kAtMost: return "≤";
    case TargetSense::kRequired: break;
  }
  return "";
}

const TargetSpec* find_spec(const std::vector<TargetSpec>& known, const std::string& key) {
  for (const auto& s : known)
    if (s.key == key) return &s;
  return nullptr;
}

std::string known_keys(const std::vector<TargetSpec>& known) {
  std::string s;
  for (const auto& k : known) s += (s.empty() ? "" : ", ") + k.key;
  return s;
}

// Reads the whole node: a number or a boolean, whichever the spec asks for.
bool is_true_false(const std::string& text) { return text == "true" || text == "false"; }

std::string number(double v) {
  if (!std::isfinite(v)) return "—";
  return strf("%.4g", v);
}

}  // namespace

std::vector<DeclaredTarget> read_targets(ConfigNode section, const std::vector<TargetSpec>& known) {
  std::vector<DeclaredTarget> out;
  for (const std::string& key : section.keys()) {
    const TargetSpec* spec = find_spec(known, key);
    if (spec == nullptr)
      throw ConfigError(located(section.where(key), "unknown target '" + key + "'", "known targets: " + known_keys(known)));
    if (spec->sense == TargetSense::kRequired) {
      const std::string text = section.get<std::string>(key, "");
      if (!is_true_false(text)) throw ConfigError(located(section.where(key), "expected true or false"));
      if (text == "true") out.push_back({key, 1.0});
      continue;
    }
    const std::string text = section.get<std::string>(key, "");
    if (is_true_false(text))
      throw ConfigError(located(section.where(key), "expected a number", "this target is a threshold, e.g. " + key + ": 2"));
    const double v = section.get<double>(key, NAN);
    if (!(std::isfinite(v) && v > 0)) throw ConfigError(located(section.where(key), "must be a finite number > 0"));
    out.push_back({key, v});
  }
  return out;
}

Verdict judge(TargetSense sense, double target, const Measurement& m) {
  if (!std::isfinite(m.value) || !std::isfinite(target)) return Verdict::kNotMeasured;
  if (sense == TargetSense::kRequired) return m.value >= 0.5 ? Verdict::kMet : Verdict::kNotMet;
  const bool spread = std::isfinite(m.low) && std::isfinite(m.high);
  const double lo = spread ? m.low : m.value, hi = spread ? m.high : m.value;
  if (sense == TargetSense::kAtLeast) {
    if (lo >= target) return Verdict::kMet;
    if (hi < target) return Verdict::kNotMet;
  } else {
    if (hi <= target) return Verdict::kMet;
    if (lo > target) return Verdict::kNotMet;
  }
  return Verdict::kWithinNoise;
}

std::vector<TargetResult> evaluate_targets(const std::vector<DeclaredTarget>& declared,
                                           const std::vector<TargetSpec>& known,
                                           const std::function<Measurement(const std::string& key)>& measure) {
  std::vector<TargetResult> out;
  for (const auto& d : declared) {
    const TargetSpec* spec = find_spec(known, d.key);
    if (spec == nullptr)
      throw ConfigError(located("report.targets", "unknown target '" + d.key + "'", "known targets: " + known_keys(known)));
    TargetResult r;
    r.spec = *spec;
    r.target = d.value;
    r.measured = measure(d.key);
    r.verdict = judge(spec->sense, d.value, r.measured);
    out.push_back(std::move(r));
  }
  return out;
}

nlohmann::json TargetResult::to_json() const {
  nlohmann::json j = {{"key", spec.key},
                      {"description", spec.description},
                      {"verdict", verdict_name(verdict)},
                      {"measured", json_number(measured.value)}};
  if (spec.sense == TargetSense::kRequired) {
    j["target"] = true;
    j["measured"] = std::isfinite(measured.value) ? nlohmann::json(measured.value >= 0.5) : nlohmann::json(nullptr);
  } else {
    j["target"] = json_number(target);
    j["comparison"] = spec.sense == TargetSense::kAtLeast ? "at_least" : "at_most";
  }
  if (std::isfinite(measured.low) && std::isfinite(measured.high))
    j["spread"] = {json_number(measured.low), json_number(measured.high)};
  if (!measured.detail.empty()) j["detail"] = measured.detail;
  return j;
}

std::string targets_markdown(const std::vector<TargetResult>& results) {
  if (results.empty()) return "";
  std::string md = "| target | declared | measured | verdict |\n|---|---|---|---|\n";
  for (const auto& r : results) {
    std::string declared, measured;
    if (r.spec.sense == TargetSense::kRequired) {
      declared = "yes";
      measured = std::isfinite(r.measured.value) ? (r.measured.value >= 0.5 ? "yes" : "no") : "—";
    } else {
      declared = std::string(sense_symbol(r.spec.sense)) + " " + number(r.target);
      measured = number(r.measured.value);
      if (std::isfinite(r.measured.low) && std::isfinite(r.measured.high))
        measured += " (" + number(r.measured.low) + "–" + number(r.measured.high) + ")";
    }
    if (!r.measured.detail.empty()) measured += "; " + r.measured.detail;
    md += "| " + r.spec.description + " (`" + r.spec.key + "`) | " + declared + " | " + measured + " | **" +
          verdict_name(r.verdict) + "** |\n";
  }
  return md;
}

nlohmann::json targets_to_json(const std::vector<DeclaredTarget>& declared) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& d : declared) j[d.key] = d.value;
  return j;
}

std::vector<DeclaredTarget> targets_from_json(const nlohmann::json& j) {
  std::vector<DeclaredTarget> out;
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) out.push_back({it.key(), it.value().get<double>()});
  return out;
}

}  // namespace kd
