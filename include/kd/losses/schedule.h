// How a loss weight or the temperature moves over training: `distill.temperature`, `distill.alpha` and
// each feature term's `weight` are either a number (constant) or
//
//   {start: 1.0, end: 0.1, warmup: 0.1, shape: linear}
//
// a linear warm-up from 0 to `start` over the first `warmup` fraction of the optimizer steps, then a
// move from `start` to `end` over the rest, linear or cosine (half a cosine period: flat at both ends).
// `end` defaults to `start` and `warmup` to 0, so {start: 1, warmup: 0.1} is a warm-up and then
// constant, and {start: 4, end: 1} a decay. TinyBERT and MiniLM keep their weights constant; warm-ups
// of feature weights and temperature annealing (e.g. Jafari et al. 2021) are what users ask to try.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "kd/io/config.h"

namespace kd {

// How far training has gone: optimizer steps done / steps planned, in [0, 1]. The trainer sets it before
// each step (TrainerOptions::before_step); scheduled losses read it.
struct TrainingProgress {
  double fraction = 0;
};

// The values a schedule may take anywhere on its way, for the error message when it leaves them.
struct ScheduleBounds {
  double lo = 0, hi = 1e300;
  bool lo_open = false;     // lo itself not allowed (a temperature must stay > 0)
  const char* meaning = "";  // e.g. "a weight must be >= 0"
};

class Schedule {
 public:
  enum class Shape { kLinear, kCosine };

  // A constant; implicit, as the config's plain number is one.
  Schedule(double value = 0) : start_(value), end_(value) {}  // NOLINT(google-explicit-constructor)

  // section[key] as a number or a schedule map; `fallback` (a constant) when absent. ConfigError naming
  // the key when a value on the way leaves `bounds` (a warm-up starts at 0), when warmup is outside
  // [0, 1) or the shape unknown.
  static Schedule from(ConfigNode& section, const std::string& key, double fallback, const ScheduleBounds& bounds);

  // The value after `progress` of training (clamped to [0, 1]).
  double at(double progress) const;
  bool is_constant() const { return warmup_ == 0 && start_ == end_; }
  // Extremes over the whole of training (0 is reached by a warm-up).
  double min() const;
  double max() const;
  // The value on the way that leaves `bounds` (a non-finite one included), if any: the one check of
  // both the config's schedules and those built in code.
  std::optional<double> outside(const ScheduleBounds& bounds) const;
  // "2" for a constant, else e.g. "0→1 over 10%, then 1→0.1 (cosine)".
  std::string describe() const;
  // A number for a constant (so that existing reports stay as they were), else the map.
  nlohmann::json to_json() const;

 private:
  double start_ = 0, end_ = 0, warmup_ = 0;
  Shape shape_ = Shape::kLinear;
};

}  // namespace kd
