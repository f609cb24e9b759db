#include "kd/losses/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kd/error.h"

namespace kd {

namespace {

constexpr double kPi = 3.14159265358979323846;

const char* shape_name(Schedule::Shape s) { return s == Schedule::Shape::kCosine ? "cosine" : "linear"; }

}  // namespace

Schedule Schedule::from(ConfigNode& section, const std::string& key, double fallback, const ScheduleBounds& bounds) {
  Schedule s(fallback);
  if (section.is_map(key)) {
    ConfigNode m = section.child(key);
    s.start_ = m.require<double>("start");
    s.end_ = m.get<double>("end", s.start_);
    s.warmup_ = m.get<double>("warmup", 0.0);
    const auto shape = m.get<std::string>("shape", "linear");
    if (shape == "cosine") {
      s.shape_ = Shape::kCosine;
    } else if (shape != "linear") {
      throw ConfigError(located(m.where("shape"), "unknown shape '" + shape + "'", "linear or cosine"));
    }
    if (!(s.warmup_ >= 0 && s.warmup_ < 1))
      throw ConfigError(located(m.where("warmup"), "warmup " + short_number(s.warmup_) + " is out of range",
                                "a fraction of the optimizer steps in [0, 1)"));
  } else {
    s = Schedule(section.get<double>(key, fallback));
  }
  if (const auto outside = s.outside(bounds)) {
    const double bad = *outside;
    throw ConfigError(located(section.where(key),
                              (s.is_constant() ? short_number(bad) : "the schedule " + s.describe() + " reaches " +
                                                                         short_number(bad)) + " during training",
                              bounds.meaning));
  }
  return s;
}

double Schedule::at(double progress) const {
  const double p = std::clamp(progress, 0.0, 1.0);
  if (p < warmup_) return start_ * p / warmup_;
  const double q = warmup_ < 1 ? (p - warmup_) / (1 - warmup_) : 1.0;
  const double f = shape_ == Shape::kCosine ? (1 - std::cos(kPi * q)) / 2 : q;
  return start_ + (end_ - start_) * f;
}

std::optional<double> Schedule::outside(const ScheduleBounds& bounds) const {
  const double lo = min(), hi = max();
  const bool below = bounds.lo_open ? !(lo > bounds.lo) : !(lo >= bounds.lo);
  if (below || !std::isfinite(lo)) return lo;
  if (!(hi <= bounds.hi) || !std::isfinite(hi)) return hi;
  return std::nullopt;
}

double Schedule::min() const { return std::min({start_, end_, warmup_ > 0 ? 0.0 : start_}); }
double Schedule::max() const { return std::max({start_, end_, warmup_ > 0 ? 0.0 : start_}); }

std::string Schedule::describe() const {
  if (is_constant()) return short_number(start_);
  std::string out;
  if (warmup_ > 0) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%g", 100 * warmup_);
    out = "0→" + short_number(start_) + " over " + pct + "%";
  }
  if (end_ != start_) {
    if (!out.empty()) out += ", then ";
    out += short_number(start_) + "→" + short_number(end_) + " (" + shape_name(shape_) + ")";
  }
  return out;
}

nlohmann::json Schedule::to_json() const {
  if (is_constant()) return start_;
  return {{"start", start_}, {"end", end_}, {"warmup", warmup_}, {"shape", shape_name(shape_)}};
}

}  // namespace kd
