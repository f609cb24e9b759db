// A one-line progress bar with rate and ETA for long loops, written to stderr. On a terminal it
// redraws in place (at most 10 times a second); in a log file (CI) it prints a line every 10%.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kd {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it", bool enabled = true);
  ~ProgressBar();

  // Advance by `n`; `status` (e.g. "loss 0.31") is shown after the ETA.
  void update(int64_t n = 1, const std::string& status = "");
  void set_position(int64_t done);  // for resumed loops
  void finish(const std::string& status = "");
  double elapsed_seconds() const;

  static std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"

 private:
  void draw(bool final);

  std::string label_, unit_, status_;
  int64_t total_, done_ = 0, start_done_ = 0;
  bool enabled_, tty_, finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace kd
