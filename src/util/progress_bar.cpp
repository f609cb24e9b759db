#include "kd/util/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace kd {

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(total, 1)),
      enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && tty_ && !finished_ && done_ > 0) std::fputc('\n', stderr);
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressBar::format_duration(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
  }
  return buf;
}

void ProgressBar::set_position(int64_t done) {
  done_ = start_done_ = done;
  start_ = std::chrono::steady_clock::now();
}

void ProgressBar::update(int64_t n, const std::string& status) {
  done_ += n;
  if (!status.empty()) status_ = status;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  } else {
    if (done_ >= total_) return;  // finish() prints the closing line
    const int decile = static_cast<int>(10 * done_ / total_);
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(false);
}

void ProgressBar::finish(const std::string& status) {
  if (!status.empty()) status_ = status;
  if (enabled_ && !finished_) draw(true);
  finished_ = true;
}

void ProgressBar::draw(bool final) {
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - start_done_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
  const int width = 24;
  const int filled = static_cast<int>(width * std::min<int64_t>(done_, total_) / total_);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %.1f %s/s %s %s%s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), static_cast<long long>(done_), static_cast<long long>(total_), rate, unit_.c_str(),
               final ? "took" : "ETA", format_duration(final ? elapsed : eta).c_str(),
               status_.empty() ? "" : "  ", status_.c_str());
  if (!tty_ || final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace kd
