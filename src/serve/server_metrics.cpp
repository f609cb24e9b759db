#include "kd/serve/server_metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace kd::serve {

namespace {

// Latency buckets from 1 ms (a batched small model) to 30 s (a long completion).
const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10,   30};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

// Prometheus numbers: integers without a fraction, the rest with the fewest digits that round-trip.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // The shortest of 15 to 17 significant digits that reads back as v (0.005, not 0.0050000000000000001).
  std::string text;
  for (int digits = 15; digits <= 17; ++digits) {
    std::ostringstream s;
    s.precision(digits);
    s << v;
    text = s.str();
    if (std::stod(text) == v) break;
  }
  return text;
}

void write_histogram(std::ostringstream& out, const std::string& name, const std::string& labels,
                     const Histogram& h) {
  const std::string sep = labels.empty() ? "" : ",";
  int64_t cumulative = 0;
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le = i < h.bounds.size() ? number(h.bounds[i]) : "+Inf";
    out << name << "_bucket{" << labels << sep << "le=\"" << le << "\"} " << cumulative << "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out << name << "_sum" << braces << " " << number(h.sum) << "\n";
  out << name << "_count" << braces << " " << h.count << "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bucket = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  ++counts[static_cast<size_t>(bucket)];
  sum += value;
  ++count;
}

ServerMetrics::ServerMetrics() : batch_rows_(kBatchBounds) {}

void ServerMetrics::record_request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  auto it = latency_.find(route);
  if (it == latency_.end()) it = latency_.emplace(route, Histogram(kLatencyBounds)).first;
  it->second.observe(seconds);
}

void ServerMetrics::record_batch(int64_t rows) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_rows_.observe(static_cast<double>(rows));
}

void ServerMetrics::add_gauge(const std::string& name, const std::string& help, std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mutex_);
  gauges_.push_back({name, help, std::move(read)});
}

std::string ServerMetrics::prometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  out << "# HELP kd_requests_total HTTP requests answered, by route and status code.\n"
      << "# TYPE kd_requests_total counter\n";
  for (const auto& [key, count] : requests_)
    out << "kd_requests_total{route=\"" << key.first << "\",status=\"" << key.second << "\"} " << count << "\n";
  out << "# HELP kd_request_duration_seconds Time from a request's arrival to the end of its response.\n"
      << "# TYPE kd_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_)
    write_histogram(out, "kd_request_duration_seconds", "route=\"" + route + "\"", h);
  out << "# HELP kd_batch_rows Rows per forward pass of the dynamic batcher.\n"
      << "# TYPE kd_batch_rows histogram\n";
  write_histogram(out, "kd_batch_rows", "", batch_rows_);
  for (const auto& g : gauges_)
    out << "# HELP " << g.name << " " << g.help << "\n# TYPE " << g.name << " gauge\n"
        << g.name << " " << number(g.read()) << "\n";
  return out.str();
}

}  // namespace kd::serve
