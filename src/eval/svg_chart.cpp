#include "kd/eval/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "kd/text/unicode.h"
#include "kd/util/log.h"

namespace kd {

namespace {

// The "tab10" colours: distinguishable, and print well in grey.
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string palette(size_t i, const std::string& chosen) {
  return chosen.empty() ? kPalette[i % (sizeof kPalette / sizeof kPalette[0])] : chosen;
}

std::string num(double v) { return strf("%.2f", v); }

// One axis: data range -> pixel range, linear or log10.
struct Axis {
  double lo = 0, hi = 1;  // data range shown
  double p0 = 0, p1 = 1;  // pixels of lo and hi
  bool log = false;
  std::vector<double> ticks;
  double px(double v) const {
    const double a = log ? std::log10(lo) : lo, b = log ? std::log10(hi) : hi;
    const double t = ((log ? std::log10(v) : v) - a) / (b - a);
    return p0 + t * (p1 - p0);
  }
};

bool drawable(double x, double y, bool log_x) { return std::isfinite(x) && std::isfinite(y) && (!log_x || x > 0); }

// Fits an axis to [lo, hi] of the data (either may be absent when nothing is drawable). A linear
// axis gets `pad` × the span of room on both sides, so that points do not sit on the frame.
Axis fit_axis(double lo, double hi, bool log, double p0, double p1, double pad = 0) {
  Axis a;
  a.log = log;
  a.p0 = p0;
  a.p1 = p1;
  if (!(lo <= hi)) lo = log ? 1 : 0, hi = log ? 10 : 1, pad = 0;  // nothing to draw
  if (log) {
    // Room around the points so markers and error bars are not cut at the frame.
    a.lo = lo / (hi > lo ? 1.5 : 3);
    a.hi = hi * (hi > lo ? 1.5 : 3);
    a.ticks = log_ticks(a.lo, a.hi);
  } else {
    if (hi == lo) {
      const double half = lo == 0 ? 1 : std::abs(lo) * 0.1;
      lo -= half, hi += half;
    }
    const double room = pad * (hi - lo);
    lo -= room, hi += room;
    a.ticks = linear_ticks(lo, hi);
    a.lo = std::min(lo, a.ticks.front());
    a.hi = std::max(hi, a.ticks.back());
  }
  return a;
}

std::string tick_label(double v, const Axis& a) {
  if (a.log) return strf("%g", v);
  const double step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : 1;
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::abs(v) < step * 1e-9) v = 0;  // no "-0.0"
  return strf("%.*f", decimals, v);
}

struct Frame {
  double left, top, right, bottom;  // plot area in pixels
};

// Background, title, grid, ticks and axis labels of one panel.
void draw_frame(std::ostringstream& out, const std::string& title, const std::string& x_label,
                const std::string& y_label, const Frame& f, const Axis& x, const Axis& y, double width) {
  out << "<text x=\"" << num(width / 2) << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
      << "font-weight=\"bold\">" << xml_escape(title) << "</text>\n";
  out << "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : x.ticks)
    out << "<line x1=\"" << num(x.px(t)) << "\" y1=\"" << num(f.top) << "\" x2=\"" << num(x.px(t)) << "\" y2=\""
        << num(f.bottom) << "\"/>\n";
  for (double t : y.ticks)
    out << "<line x1=\"" << num(f.left) << "\" y1=\"" << num(y.px(t)) << "\" x2=\"" << num(f.right) << "\" y2=\""
        << num(y.px(t)) << "\"/>\n";
  out << "</g>\n";
  out << "<rect x=\"" << num(f.left) << "\" y=\"" << num(f.top) << "\" width=\"" << num(f.right - f.left)
      << "\" height=\"" << num(f.bottom - f.top) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  for (double t : x.ticks)
    out << "<text x=\"" << num(x.px(t)) << "\" y=\"" << num(f.bottom + 16) << "\" text-anchor=\"middle\">"
        << xml_escape(tick_label(t, x)) << "</text>\n";
  for (double t : y.ticks)
    out << "<text x=\"" << num(f.left - 6) << "\" y=\"" << num(y.px(t) + 4) << "\" text-anchor=\"end\">"
        << xml_escape(tick_label(t, y)) << "</text>\n";
  out << "<text x=\"" << num((f.left + f.right) / 2) << "\" y=\"" << num(f.bottom + 36)
      << "\" text-anchor=\"middle\">" << xml_escape(x_label) << "</text>\n";
  const double cy = (f.top + f.bottom) / 2;
  out << "<text x=\"16\" y=\"" << num(cy) << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " << num(cy)
      << ")\">" << xml_escape(y_label) << "</text>\n";
}

// Says so in the middle of an empty plot, rather than leaving a reader to guess.
void draw_empty_note(std::ostringstream& out, const Frame& f, const std::string& note) {
  out << "<text x=\"" << num((f.left + f.right) / 2) << "\" y=\"" << num((f.top + f.bottom) / 2)
      << "\" text-anchor=\"middle\" fill=\"#777\">" << xml_escape(note) << "</text>\n";
}

void render_line(std::ostringstream& out, const LineChart& c) {
  const Frame f{64, 36, c.width - 200, c.height - 48};
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& s : c.series)
    for (const auto& [x, y] : s.points)
      if (drawable(x, y, false)) {
        x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
        y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
      }
  const Axis x = fit_axis(x_lo, x_hi, false, f.left, f.right);
  const Axis y = fit_axis(y_lo, y_hi, false, f.bottom, f.top, 0.05);
  out << "<rect width=\"" << num(c.width) << "\" height=\"" << num(c.height) << "\" fill=\"white\"/>\n";
  draw_frame(out, c.title, c.x_label, c.y_label, f, x, y, c.width);
  if (!(x_lo <= x_hi)) draw_empty_note(out, f, "no data");
  for (size_t i = 0; i < c.series.size(); ++i) {
    const SvgSeries& s = c.series[i];
    const std::string color = palette(i, s.color);
    const std::string dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    std::string pts;
    for (const auto& [px, py] : s.points)
      if (drawable(px, py, false)) pts += num(x.px(px)) + "," + num(y.px(py)) + " ";
    if (!pts.empty()) {
      out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\"" << dash << " points=\"" << pts
          << "\"/>\n";
      for (const auto& [px, py] : s.points)
        if (drawable(px, py, false))
          out << "<circle cx=\"" << num(x.px(px)) << "\" cy=\"" << num(y.px(py)) << "\" r=\"2.5\" fill=\"" << color
              << "\"/>\n";
    }
    // Legend to the right of the plot, one row per series.
    const double ly = f.top + 8 + 18 * static_cast<double>(i);
    out << "<line x1=\"" << num(f.right + 12) << "\" y1=\"" << num(ly) << "\" x2=\"" << num(f.right + 36)
        << "\" y2=\"" << num(ly) << "\" stroke=\"" << color << "\" stroke-width=\"2\"" << dash << "/>\n";
    out << "<text x=\"" << num(f.right + 42) << "\" y=\"" << num(ly + 4) << "\">" << xml_escape(s.name)
        << "</text>\n";
  }
}

void render_scatter(std::ostringstream& out, const ScatterChart& c) {
  const Frame f{64, 36, c.width - 160, c.height - 48};
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& p : c.points)
    if (drawable(p.x, p.y, c.log_x)) {
      const double err = std::isfinite(p.y_err) && p.y_err > 0 ? p.y_err : 0;
      x_lo = std::min(x_lo, p.x), x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y - err), y_hi = std::max(y_hi, p.y + err);
    }
  const Axis x = fit_axis(x_lo, x_hi, c.log_x, f.left, f.right);
  const Axis y = fit_axis(y_lo, y_hi, false, f.bottom, f.top, 0.05);
  out << "<rect width=\"" << num(c.width) << "\" height=\"" << num(c.height) << "\" fill=\"white\"/>\n";
  draw_frame(out, c.title, c.x_label, c.y_label, f, x, y, c.width);
  if (!(x_lo <= x_hi)) draw_empty_note(out, f, c.log_x ? "no data (a log axis has no place for 0)" : "no data");
  std::vector<std::pair<double, double>> placed;  // label anchors so far, to keep labels apart
  for (size_t i = 0; i < c.points.size(); ++i) {
    const ScatterPoint& p = c.points[i];
    if (!drawable(p.x, p.y, c.log_x)) continue;
    const std::string color = palette(i, p.color);
    const double px = x.px(p.x), py = y.px(p.y);
    if (std::isfinite(p.y_err) && p.y_err > 0) {
      const double a = y.px(p.y - p.y_err), b = y.px(p.y + p.y_err);
      out << "<path d=\"M" << num(px) << " " << num(a) << " V" << num(b) << " M" << num(px - 5) << " " << num(a)
          << " H" << num(px + 5) << " M" << num(px - 5) << " " << num(b) << " H" << num(px + 5) << "\" stroke=\""
          << color << "\" stroke-width=\"1.5\" fill=\"none\"/>\n";
    }
    out << "<circle cx=\"" << num(px) << "\" cy=\"" << num(py) << "\" r=\"5\" fill=\"" << color
        << "\" stroke=\"#333\"/>\n";
    // Students of one architecture share a latency, so their labels would print over each other:
    // move a label down until it clears the labels already placed near it.
    double ly = py + 4;
    for (bool moved = true; moved;) {
      moved = false;
      for (const auto& [ox, oy] : placed)
        if (std::abs(ox - px) < 140 && std::abs(oy - ly) < 15) ly = oy + 15, moved = true;
    }
    placed.emplace_back(px, ly);
    out << "<text x=\"" << num(px + 9) << "\" y=\"" << num(ly) << "\">" << xml_escape(p.label) << "</text>\n";
  }
}

std::string open_svg(double width, double height) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         num(width) + "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp;
    if (!unicode::decode_utf8(text, pos, cp)) {
      ++pos;
      cp = 0xFFFD;  // invalid UTF-8 would make the whole document unreadable
    }
    switch (cp) {
      case '&': out += "&amp;"; continue;
      case '<': out += "&lt;"; continue;
      case '>': out += "&gt;"; continue;
      case '"': out += "&quot;"; continue;
      case '\'': out += "&apos;"; continue;
      default: break;
    }
    const bool allowed = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp != 0xFFFE && cp != 0xFFFF);
    if (allowed) unicode::append_utf8(out, cp);
  }
  return out;
}

std::vector<double> linear_ticks(double lo, double hi, int target) {
  if (!(std::isfinite(lo) && std::isfinite(hi)) || hi <= lo) return {std::isfinite(lo) ? lo : 0};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  for (double k = first; k <= last + 0.5; ++k) ticks.push_back(k * step);
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  if (!(lo > 0 && hi > lo && std::isfinite(hi))) return ticks;
  for (int k = static_cast<int>(std::floor(std::log10(lo))); k <= static_cast<int>(std::ceil(std::log10(hi))); ++k)
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, k);
      if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12)) ticks.push_back(v);
    }
  return ticks;
}

std::string line_chart_svg(const LineChart& chart) { return stacked_line_charts_svg({chart}); }

std::string stacked_line_charts_svg(const std::vector<LineChart>& charts) {
  double width = 0, height = 0;
  for (const auto& c : charts) width = std::max(width, c.width), height += c.height;
  std::ostringstream out;
  out << open_svg(std::max(width, 1.0), std::max(height, 1.0));
  double offset = 0;
  for (const auto& c : charts) {
    out << "<g transform=\"translate(0 " << num(offset) << ")\">\n";
    render_line(out, c);
    out << "</g>\n";
    offset += c.height;
  }
  out << "</svg>\n";
  return out.str();
}

std::string scatter_chart_svg(const ScatterChart& chart) {
  std::ostringstream out;
  out << open_svg(chart.width, chart.height);
  render_scatter(out, chart);
  out << "</svg>\n";
  return out.str();
}

}  // namespace kd
