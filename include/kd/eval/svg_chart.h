// A small SVG writer for the plots of a run report: line charts (training curves) and labelled
// scatter charts (accuracy vs. latency). Self-contained text output, so the report needs no plotting
// library and the files open in any browser. Non-finite values (and x <= 0 on a log axis) are left
// out rather than written, so the output is always valid XML with finite coordinates.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kd {

struct SvgSeries {
  std::string name;                               // legend entry
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
  std::string color;                              // CSS colour; empty: taken from the palette
  bool dashed = false;
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<SvgSeries> series;
  double width = 720, height = 320;  // pixels, legend included
};

struct ScatterPoint {
  std::string label;   // written next to the marker
  double x = 0, y = 0;
  double y_err = 0;    // > 0: a vertical error bar of ± y_err
  std::string color;   // empty: taken from the palette
};

struct ScatterChart {
  std::string title, x_label, y_label;
  std::vector<ScatterPoint> points;
  bool log_x = false;  // latency spans orders of magnitude between teacher and student
  double width = 720, height = 400;
};

// Complete SVG documents.
std::string line_chart_svg(const LineChart& chart);
std::string scatter_chart_svg(const ScatterChart& chart);
// Several line charts stacked top to bottom in one document (panels of one figure).
std::string stacked_line_charts_svg(const std::vector<LineChart>& charts);

// Escapes &, <, >, " and ' for XML text and attribute values; drops control characters that XML 1.0
// does not allow.
std::string xml_escape(const std::string& text);

// Axis ticks: "nice" values (1, 2, 5 × 10^k) covering [lo, hi]; on a log axis 1, 2, 5 per decade.
std::vector<double> linear_ticks(double lo, double hi, int target = 5);
std::vector<double> log_ticks(double lo, double hi);

}  // namespace kd
