// Declared targets and the verdicts a report computes from them. A config states what a run must
// reach (`report.targets: {retention: 0.96, speedup_b1: 10}`); the report measures each figure,
// compares it with the target and prints both, so that "met" is never typed by hand.
//
// A figure measured with a spread (a speed-up over timing rounds: low..high) gets one of three
// verdicts: "met" when even its low end reaches the target, "not met" when even its high end falls
// short, "within noise" when the target lies inside the spread. A figure without a spread is met or
// not met. A figure the run could not measure (no baseline, one seed) is "not measured".
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/io/config.h"

namespace kd {

enum class Verdict { kMet, kNotMet, kWithinNoise, kNotMeasured };
// "met", "not met", "within noise", "not measured".
const char* verdict_name(Verdict v);

enum class TargetSense {
  kAtLeast,   // measured >= target
  kAtMost,    // measured <= target
  kRequired,  // a yes/no property; declared as `true` (a `false` target asks for nothing and is dropped)
};

// One target a report knows how to check.
struct TargetSpec {
  std::string key;          // the config key under report.targets
  std::string description;  // what is measured, for the report ("batch-1 speed-up of the distilled student")
  TargetSense sense = TargetSense::kAtLeast;
};

// A figure as measured: the value and, where the measurement has one, its spread [low, high].
// NaN value: not measured. NaN low/high: no spread. For kRequired, value is 1 (yes) or 0 (no).
struct Measurement {
  double value = NAN;
  double low = NAN, high = NAN;
  std::string detail;  // optional words beside the figure ("gain +1.76 vs noise 1.40")
};

struct TargetResult {
  TargetSpec spec;
  double target = NAN;  // for kRequired: 1
  Measurement measured;
  Verdict verdict = Verdict::kNotMeasured;
  nlohmann::json to_json() const;
};

struct DeclaredTarget {
  std::string key;
  double value = NAN;  // the threshold; 1 for a required property
};

// Reads `section` (report.targets): every key must be one of `known` (ConfigError naming the key and
// listing the known ones); a threshold must be a finite number > 0, a required property true or false.
std::vector<DeclaredTarget> read_targets(ConfigNode section, const std::vector<TargetSpec>& known);

// The verdict for one figure against one threshold, with the rule in this header's comment.
Verdict judge(TargetSense sense, double target, const Measurement& m);

// Judges every declared target, in the order declared; `measure(key)` gives the figure for a key.
std::vector<TargetResult> evaluate_targets(const std::vector<DeclaredTarget>& declared,
                                           const std::vector<TargetSpec>& known,
                                           const std::function<Measurement(const std::string& key)>& measure);

// A markdown table: target, measured (with spread), verdict. Empty string when there are no targets.
std::string targets_markdown(const std::vector<TargetResult>& results);

// JSON form of declared targets (for the saved report) and back.
nlohmann::json targets_to_json(const std::vector<DeclaredTarget>& declared);
std::vector<DeclaredTarget> targets_from_json(const nlohmann::json& j);

}  // namespace kd
