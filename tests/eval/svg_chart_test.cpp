#include "kd/eval/svg_chart.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "eval/xml_check.h"
#include "test_paths.h"

namespace kd {
namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

std::filesystem::path write(const std::string& name, const std::string& svg) {
  const auto path = test::temp_dir("svg_chart") / name;
  std::ofstream(path) << svg;
  return path;
}

TEST(SvgChartTest, TicksAreRoundNumbersCoveringTheRange) {
  const auto t = linear_ticks(0, 1);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_NEAR(t[0], 0, 1e-12);
  EXPECT_NEAR(t[1], 0.2, 1e-12);
  EXPECT_NEAR(t[5], 1, 1e-12);
  const auto a = linear_ticks(83.2, 91.7);  // step 2: 82 .. 92
  EXPECT_NEAR(a.front(), 82, 1e-9);
  EXPECT_NEAR(a.back(), 92, 1e-9);
  const auto l = log_ticks(0.5, 30);
  const std::vector<double> want = {0.5, 1, 2, 5, 10, 20};
  ASSERT_EQ(l.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(l[i], want[i], 1e-12);
  EXPECT_TRUE(log_ticks(0, 10).empty());  // no log axis through zero
}

TEST(SvgChartTest, EscapesTextForXml) {
  EXPECT_EQ(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
  EXPECT_EQ(xml_escape(std::string("x\x01y\tz")), "xy\tz");          // control characters XML forbids
  EXPECT_EQ(xml_escape("α = 0 ±"), "α = 0 ±");                         // UTF-8 passes through
  EXPECT_EQ(xml_escape(std::string("bad\xff")), "bad\xEF\xBF\xBD");   // invalid UTF-8 -> U+FFFD
}

TEST(SvgChartTest, LineChartIsWellFormedAndSkipsNonFinitePoints) {
  LineChart c;
  c.title = "Loss <train> & \"valid\"";
  c.x_label = "epoch";
  c.y_label = "loss";
  c.series.push_back({"seed 13", {{0.5, 0.7}, {1, 0.5}, {1.5, NAN}, {2, 0.4}}, "", false});
  c.series.push_back({"baseline", {{0.5, 0.8}, {1, INFINITY}, {2, 0.6}}, "#ff7f0e", true});
  c.series.push_back({"empty", {}, "", false});
  const std::string svg = line_chart_svg(c);
  EXPECT_TRUE(test::xml_balanced(svg));
  EXPECT_NE(svg.find("Loss &lt;train&gt; &amp; &quot;valid&quot;"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2u);       // the empty series draws no line
  EXPECT_EQ(count(svg, "<circle"), 3u + 2u);    // markers only at finite points
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find(">seed 13<"), std::string::npos);  // legend
  EXPECT_TRUE(test::xml_file_well_formed(write("line.svg", svg)));
}

TEST(SvgChartTest, ChartWithoutDataStillRenders) {
  LineChart c;
  c.title = "nothing yet";
  const std::string svg = line_chart_svg(c);
  EXPECT_TRUE(test::xml_balanced(svg));
  EXPECT_EQ(count(svg, "<polyline"), 0u);
  ScatterChart s;
  s.log_x = true;
  s.points.push_back({"zero latency", 0, 90, 0, ""});
  const std::string sc = scatter_chart_svg(s);
  EXPECT_TRUE(test::xml_balanced(sc));
  EXPECT_EQ(count(sc, "<circle"), 0u);  // x = 0 has no place on a log axis
  EXPECT_NE(sc.find(">no data"), std::string::npos);
  EXPECT_NE(svg.find(">no data<"), std::string::npos);
}

TEST(SvgChartTest, ScatterOnLogAxisWithErrorBarsAndSeparatedLabels) {
  ScatterChart s;
  s.title = "Accuracy vs. latency";
  s.log_x = true;
  s.points.push_back({"teacher 90.00%", 20, 90, 0, ""});
  s.points.push_back({"distilled 87.00%", 2, 87, 1, ""});
  s.points.push_back({"baseline 84.00%", 2, 86.9, 1, ""});  // same latency, nearly the same accuracy
  s.points.push_back({"broken", NAN, 80, 0, ""});
  const std::string svg = scatter_chart_svg(s);
  EXPECT_TRUE(test::xml_balanced(svg));
  EXPECT_EQ(count(svg, "<circle"), 3u);
  EXPECT_EQ(count(svg, "<path"), 2u);  // error bars of the two students
  EXPECT_NE(svg.find(">10<"), std::string::npos);  // a decade tick between 2 and 20 ms
  // The two student labels must not share a baseline position.
  const size_t a = svg.find(">distilled 87.00%<"), b = svg.find(">baseline 84.00%<");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  auto y_of = [&](size_t at) {
    const size_t y = svg.rfind(" y=\"", at);
    return std::stod(svg.substr(y + 4));
  };
  EXPECT_GE(std::abs(y_of(a) - y_of(b)), 14.9);
  EXPECT_TRUE(test::xml_file_well_formed(write("scatter.svg", svg)));
}

TEST(SvgChartTest, StackedPanelsShareOneDocument) {
  LineChart a, b;
  a.series.push_back({"x", {{0, 1}, {1, 2}}, "", false});
  b.series.push_back({"y", {{0, 3}, {1, 1}}, "", false});
  a.height = 300;
  b.height = 200;
  const std::string svg = stacked_line_charts_svg({a, b});
  EXPECT_EQ(count(svg, "<svg"), 1u);
  EXPECT_EQ(count(svg, "<g transform=\"translate(0 "), 2u);
  EXPECT_NE(svg.find("height=\"500.00\""), std::string::npos);
  EXPECT_TRUE(test::xml_balanced(svg));
}

}  // namespace
}  // namespace kd
