// PNG copies of the reports' SVG charts, for viewers that do not show SVG (chat tools, some
// markdown renderers, image previews). The SVG text itself is rasterised (librsvg + cairo), so there
// is one drawing and the two files cannot disagree.
#pragma once

#include <string>

namespace kd {

// Renders the SVG document `svg` at its own width and height (1 SVG pixel = 1 image pixel) and writes
// it as a PNG to `png_path`, atomically. FormatError when librsvg cannot read the document or it has no
// usable size (nothing is written then); IoError when the file cannot be written.
void write_png_from_svg(const std::string& svg, const std::string& png_path);

// Writes `svg` to `svg_path` and the same picture as a PNG beside it (the extension replaced by .png),
// each atomically. The PNG is rendered first, so a document librsvg rejects leaves neither file.
void write_svg_and_png(const std::string& svg_path, const std::string& svg);

}  // namespace kd
