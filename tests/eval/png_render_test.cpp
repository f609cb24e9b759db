// The PNG copies of the report charts: the SVG rasterised at its own size, the picture really drawn
// (text included, so a font was found), a marker where the SVG puts it in its colour, and a document
// librsvg cannot read is a typed error that writes nothing.
#include "kd/eval/png_render.h"

#include <cairo.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "expect_error.h"
#include "kd/eval/distill_report.h"
#include "kd/eval/lm_report.h"
#include "kd/eval/svg_chart.h"
#include "kd/io/atomic_file.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

// A PNG read back into memory: its size and the colour of any pixel.
class Image {
 public:
  explicit Image(const fs::path& png) : surface_(cairo_image_surface_create_from_png(png.string().c_str())) {}
  ~Image() { cairo_surface_destroy(surface_); }
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  bool ok() const { return cairo_surface_status(surface_) == CAIRO_STATUS_SUCCESS; }
  int width() const { return cairo_image_surface_get_width(surface_); }
  int height() const { return cairo_image_surface_get_height(surface_); }
  // 0xAARRGGBB (premultiplied; the charts are opaque, so plain colours).
  uint32_t at(int x, int y) const {
    cairo_surface_flush(surface_);
    const unsigned char* row = cairo_image_surface_get_data(surface_) + y * cairo_image_surface_get_stride(surface_);
    return reinterpret_cast<const uint32_t*>(row)[x];
  }
  // Share of the pixels of [x0, x1) × [y0, y1) that are not the white background.
  double inked(int x0, int y0, int x1, int y1) const {
    int64_t n = 0, total = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x, ++total) n += at(x, y) != 0xFFFFFFFFu;
    return total ? static_cast<double>(n) / static_cast<double>(total) : 0;
  }

 private:
  cairo_surface_t* surface_;
};

bool near_colour(uint32_t argb, int r, int g, int b, int tolerance = 3) {
  return std::abs(static_cast<int>((argb >> 16) & 0xFF) - r) <= tolerance &&
         std::abs(static_cast<int>((argb >> 8) & 0xFF) - g) <= tolerance &&
         std::abs(static_cast<int>(argb & 0xFF) - b) <= tolerance && (argb >> 24) == 0xFF;
}

// The width and height the <svg> element declares.
std::pair<int, int> svg_size(const std::string& svg) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(svg, m, std::regex("<svg[^>]* width=\"([0-9.]+)\" height=\"([0-9.]+)\"")));
  return {static_cast<int>(std::ceil(std::stod(m[1]))), static_cast<int>(std::ceil(std::stod(m[2])))};
}

void expect_same_size(const fs::path& svg, const fs::path& png) {
  const Image image(png);
  ASSERT_TRUE(image.ok()) << png;
  const auto [w, h] = svg_size(read_file(svg.string()));
  EXPECT_EQ(image.width(), w) << png;
  EXPECT_EQ(image.height(), h) << png;
}

ScatterChart chart() {
  ScatterChart c;
  c.title = "Accuracy vs. latency";
  c.x_label = "latency at batch 1, ms (log scale)";
  c.y_label = "test accuracy (%)";
  c.log_x = true;
  c.points = {{"teacher 88.53%", 10.3, 88.5, 0, "#2ca02c"},
              {"distilled 85.74%", 0.92, 85.7, 0.2, "#d62728"},
              {"baseline 83.56%", 0.78, 83.6, 0.9, "#1f77b4"}};
  return c;
}

TEST(PngRenderTest, ScatterChartIsDrawnAtItsSizeWithTheMarkerWhereTheSvgPutsIt) {
  const auto dir = test::temp_dir("png_render");
  const std::string svg = scatter_chart_svg(chart());
  write_png_from_svg(svg, (dir / "chart.png").string());
  const Image image(dir / "chart.png");
  ASSERT_TRUE(image.ok());
  const auto [w, h] = svg_size(svg);
  EXPECT_EQ(image.width(), w);
  EXPECT_EQ(image.height(), h);
  EXPECT_EQ(image.width(), 720);

  // Not blank: frame, grid, markers and text are drawn over the white background.
  const double inked = image.inked(0, 0, image.width(), image.height());
  EXPECT_GT(inked, 0.03) << "share of non-background pixels";
  EXPECT_EQ(image.at(2, 2), 0xFFFFFFFFu) << "the background is opaque white";
  // The title is text (centred in the top 30 pixels): drawn only when a font was found.
  EXPECT_GT(image.inked(w / 2 - 80, 4, w / 2 + 80, 28), 0.05) << "title text missing: is a font installed?";

  // The distilled student's marker, at the centre the SVG gives its circle, in its fill colour.
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(svg, m, std::regex("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\" r=\"5\" fill=\"#d62728\"")));
  const int cx = static_cast<int>(std::stod(m[1])), cy = static_cast<int>(std::stod(m[2]));
  EXPECT_TRUE(near_colour(image.at(cx, cy), 0xd6, 0x27, 0x28)) << std::hex << image.at(cx, cy);
  // ... and the teacher's in green, not red.
  ASSERT_TRUE(
      std::regex_search(svg, m, std::regex("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\" r=\"5\" fill=\"#2ca02c\"")));
  EXPECT_TRUE(
      near_colour(image.at(static_cast<int>(std::stod(m[1])), static_cast<int>(std::stod(m[2]))), 0x2c, 0xa0, 0x2c));
}

TEST(PngRenderTest, MalformedSvgIsAFormatErrorAndWritesNothing) {
  const auto dir = test::temp_dir("png_render_bad");
  const std::string good = scatter_chart_svg(chart());
  for (const std::string& bad :
       {good.substr(0, good.size() / 2), std::string("not an svg at all"), std::string(),
        std::string("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"0\" height=\"0\"/>")}) {
    test::expect_error<FormatError>([&] { write_png_from_svg(bad, (dir / "chart.png").string()); }, {"chart.png"});
    test::expect_error<FormatError>([&] { write_svg_and_png((dir / "both.svg").string(), bad); }, {"both.png"});
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "no PNG, SVG or temporary file is left";
}

TEST(PngRenderTest, SvgAndPngAreWrittenSideBySide) {
  const auto dir = test::temp_dir("png_render_pair");
  const std::string svg = scatter_chart_svg(chart());
  write_svg_and_png((dir / "accuracy_vs_latency.svg").string(), svg);
  EXPECT_EQ(read_file((dir / "accuracy_vs_latency.svg").string()), svg);
  expect_same_size(dir / "accuracy_vs_latency.svg", dir / "accuracy_vs_latency.png");
}

TEST(PngRenderTest, ReportsWriteAPngBesideEverySvg) {
  DistillReport r;
  r.dataset = "sst2";
  r.threads = 2;
  r.teacher.name = "teacher";
  r.teacher.accuracy = {0.9};
  r.teacher.profile.latency_ms_b1 = 20;
  r.distilled.name = "distilled student";
  r.distilled.accuracy = {0.86, 0.87};
  r.distilled.profile.latency_ms_b1 = 2;
  const auto dir = test::temp_dir("png_render_report");
  write_report(dir.string(), r);
  for (const char* chart : {"curves", "accuracy_vs_latency"})
    expect_same_size(dir / (std::string(chart) + ".svg"), dir / (std::string(chart) + ".png"));

  LmReport lm;
  lm.student.curve = {{10, 1000, 3.5, 40}, {20, 2000, 3.1, 30}};
  const auto lm_dir = test::temp_dir("png_render_lm_report");
  write_lm_report(lm_dir.string(), lm);
  expect_same_size(lm_dir / "curves.svg", lm_dir / "curves.png");
}

}  // namespace
}  // namespace kd
