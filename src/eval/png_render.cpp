#include "kd/eval/png_render.h"

#include <cairo.h>
#include <librsvg/rsvg.h>

#include <cmath>
#include <filesystem>
#include <memory>

#include "kd/error.h"
#include "kd/io/atomic_file.h"

namespace kd {

namespace {

// Owners for the C objects, so that every early throw releases them.
struct GObjectUnref {
  void operator()(void* p) const { g_object_unref(p); }
};
struct SurfaceDestroy {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDestroy {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};

// The message of a GError, which is then freed, on one line (kd's errors are one line; libxml2's end
// with a newline).
std::string take_message(GError* error) {
  std::string message = error && error->message ? error->message : "unknown librsvg error";
  if (error) g_error_free(error);
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  while (!message.empty() && message.back() == ' ') message.pop_back();
  return message;
}

// A chart is a few hundred pixels a side; anything beyond this is a malformed size, not a picture.
constexpr double kMaxSide = 16384;

std::string encode_png(const std::string& svg, const std::string& png_path) {
  if (svg.empty()) throw FormatError(located(png_path, "the SVG document is empty"));
  GError* error = nullptr;
  std::unique_ptr<RsvgHandle, GObjectUnref> handle(
      rsvg_handle_new_from_data(reinterpret_cast<const guint8*>(svg.data()), svg.size(), &error));
  if (!handle) throw FormatError(located(png_path, "the SVG cannot be read: " + take_message(error)));
  double w = 0, h = 0;
  if (!rsvg_handle_get_intrinsic_size_in_pixels(handle.get(), &w, &h) || !(w >= 1 && h >= 1) || w > kMaxSide ||
      h > kMaxSide)
    throw FormatError(located(png_path, "the SVG has no usable width and height in pixels",
                              "give the <svg> element width and height attributes"));
  const int width = static_cast<int>(std::ceil(w)), height = static_cast<int>(std::ceil(h));
  std::unique_ptr<cairo_surface_t, SurfaceDestroy> surface(
      cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height));
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS)
    throw IoError(located(png_path, "cannot allocate a " + std::to_string(width) + "x" + std::to_string(height) +
                                        " image: " + cairo_status_to_string(cairo_surface_status(surface.get()))));
  {
    std::unique_ptr<cairo_t, ContextDestroy> cr(cairo_create(surface.get()));
    const RsvgRectangle viewport{0, 0, static_cast<double>(width), static_cast<double>(height)};
    if (!rsvg_handle_render_document(handle.get(), cr.get(), &viewport, &error))
      throw FormatError(located(png_path, "the SVG cannot be rendered: " + take_message(error)));
  }
  std::string bytes;
  auto append = [](void* closure, const unsigned char* data, unsigned int length) {
    static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
    return CAIRO_STATUS_SUCCESS;
  };
  const cairo_status_t status = cairo_surface_write_to_png_stream(surface.get(), append, &bytes);
  if (status != CAIRO_STATUS_SUCCESS)
    throw IoError(located(png_path, std::string("cannot encode the PNG: ") + cairo_status_to_string(status)));
  return bytes;
}

}  // namespace

void write_png_from_svg(const std::string& svg, const std::string& png_path) {
  write_file_atomic(png_path, encode_png(svg, png_path));
}

void write_svg_and_png(const std::string& svg_path, const std::string& svg) {
  const std::string png_path = std::filesystem::path(svg_path).replace_extension(".png").string();
  const std::string png = encode_png(svg, png_path);
  write_file_atomic(svg_path, svg);
  write_file_atomic(png_path, png);
}

}  // namespace kd
