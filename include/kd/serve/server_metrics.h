// What `GET /metrics` reports, in the Prometheus text exposition format (version 0.0.4): requests by
// route and status, request latency per route and batch sizes as histograms, and gauges read when
// scraped (queue depth, requests in flight). Thread-safe: every HTTP worker records into one object.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace kd::serve {

// A cumulative histogram with fixed upper bounds (the +Inf bucket is implied).
struct Histogram {
  std::vector<double> bounds;
  std::vector<int64_t> counts;  // per bucket, not cumulative; one more than bounds (the +Inf bucket)
  double sum = 0;
  int64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {});
  void observe(double value);
};

class ServerMetrics {
 public:
  ServerMetrics();

  // One answered request: its route ("other" for paths the server does not serve), status and the
  // seconds from its arrival to the end of its response (streamed responses included).
  void record_request(const std::string& route, int status, double seconds);
  // One forward pass of the dynamic batcher with `rows` rows.
  void record_batch(int64_t rows);
  // A gauge whose value is read when /metrics is scraped.
  void add_gauge(const std::string& name, const std::string& help, std::function<double()> read);

  std::string prometheus() const;

 private:
  struct Gauge {
    std::string name, help;
    std::function<double()> read;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> latency_;                 // route -> seconds
  Histogram batch_rows_;
  std::vector<Gauge> gauges_;
};

}  // namespace kd::serve
