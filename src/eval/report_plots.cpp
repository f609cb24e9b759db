// The two figures of the distillation report (declared in distill_report.h): training curves per
// seed of both students, and accuracy against batch-1 latency for all three models.
#include <algorithm>
#include <cmath>

#include "kd/eval/distill_report.h"
#include "kd/eval/svg_chart.h"
#include "kd/util/log.h"

namespace kd {

namespace {

// Shades of one hue per student, so that seeds of one model read as a family; the baseline is
// also dashed so the two stay apart in grey print.
const char* const kDistilledShades[] = {"#1f77b4", "#6baed6", "#08519c", "#4292c6", "#9ecae1"};
const char* const kBaselineShades[] = {"#ff7f0e", "#fdae6b", "#a63603", "#f16913", "#fdd0a2"};
constexpr const char* kTeacherColor = "#2ca02c";

enum class Curve { ValidAccuracy, TrainLoss, ValidLoss };

// One series per seed of `m`; points without a value (no training loss recorded, NaN) are skipped.
void add_curves(std::vector<SvgSeries>& out, const ReportModel& m, const char* const* shades, bool dashed,
                Curve curve) {
  for (size_t run = 0; run < m.histories.size(); ++run) {
    SvgSeries s;
    s.name = m.name + ", " + m.seed_label(run);
    s.color = shades[run % 5];
    s.dashed = dashed;
    for (const EvalRecord& r : m.histories[run]) {
      double y = NAN;
      if (curve == Curve::ValidAccuracy) y = 100 * r.accuracy;
      if (curve == Curve::ValidLoss) y = r.loss;
      // A record from before training losses were kept holds 0, which is no real mean loss.
      if (curve == Curve::TrainLoss && r.train_loss > 0) y = r.train_loss;
      if (std::isfinite(y)) s.points.emplace_back(r.epoch, y);
    }
    out.push_back(std::move(s));
  }
}

LineChart curve_chart(const DistillReport& r, Curve curve) {
  LineChart c;
  c.x_label = "epoch";
  if (curve == Curve::ValidAccuracy) {
    c.title = "Validation accuracy";
    c.y_label = "accuracy (%)";
  } else if (curve == Curve::TrainLoss) {
    c.title = "Training loss (distilled: distillation objective; baseline: cross-entropy)";
    c.y_label = "mean loss since previous evaluation";
  } else {
    c.title = "Validation loss (cross-entropy)";
    c.y_label = "loss";
  }
  add_curves(c.series, r.distilled, kDistilledShades, false, curve);
  add_curves(c.series, r.baseline, kBaselineShades, true, curve);
  // The teacher's accuracy on the same validation rows as a reference line across the epochs the
  // students trained for (its test accuracy would compare unlike sets).
  const double teacher = 100 * mean_of(r.teacher.valid_accuracy);
  if (curve == Curve::ValidAccuracy && std::isfinite(teacher)) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& s : c.series)
      for (const auto& p : s.points) lo = std::min(lo, p.first), hi = std::max(hi, p.first);
    if (lo <= hi) c.series.push_back({r.teacher.name, {{lo, teacher}, {hi, teacher}}, kTeacherColor, true});
  }
  return c;
}

}  // namespace

std::string curves_svg(const DistillReport& report) {
  return stacked_line_charts_svg({curve_chart(report, Curve::ValidAccuracy), curve_chart(report, Curve::TrainLoss),
                                  curve_chart(report, Curve::ValidLoss)});
}

std::string accuracy_latency_svg(const DistillReport& report) {
  ScatterChart c;
  c.title = "Accuracy vs. CPU latency (" + report.dataset + ")";
  c.x_label = strf("latency at batch 1, ms (log scale, %d threads)", report.threads);
  c.y_label = "test accuracy (%)";
  c.log_x = true;
  auto add = [&](const ReportModel& m, const char* color) {
    const double acc = m.accuracy_mean();
    ScatterPoint p;
    p.label = m.name + (std::isfinite(acc) ? strf(" %.2f%%", 100 * acc) : "");
    p.x = m.profile.latency_ms_b1;
    p.y = 100 * acc;
    p.y_err = m.accuracy.size() > 1 ? 100 * m.accuracy_std() : 0;  // ± one std over seeds
    p.color = color;
    c.points.push_back(p);
  };
  add(report.teacher, kTeacherColor);
  add(report.distilled, kDistilledShades[0]);
  add(report.baseline, kBaselineShades[0]);
  return scatter_chart_svg(c);
}

}  // namespace kd
