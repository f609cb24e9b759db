#include "kd/serve/load_test.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "kd/error.h"
#include "kd/eval/model_profile.h"
#include "kd/serve/http_client.h"

namespace kd::serve {

namespace {

using Clock = std::chrono::steady_clock;

struct Phase {
  std::vector<double> latencies_ms;
  std::map<int, int64_t> by_status;
  double seconds = 0;
};

Phase run_phase(const LoadOptions& o, const std::vector<std::string>& bodies, int64_t count, double max_seconds) {
  Phase phase;
  std::mutex mutex;
  std::atomic<int64_t> next{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(max_seconds));
  std::vector<std::thread> clients;
  for (int64_t c = 0; c < o.concurrency; ++c)
    clients.emplace_back([&] {
      HttpClient client(o.host, o.port);
      std::vector<double> mine;
      std::map<int, int64_t> statuses;
      for (int64_t i; (i = next++) < count && Clock::now() < deadline;) {
        const auto t0 = Clock::now();
        const auto reply = client.post(o.path, bodies[static_cast<size_t>(i) % bodies.size()]);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        ++statuses[reply.status];
        if (reply.status == 200) mine.push_back(ms);
      }
      std::lock_guard<std::mutex> lock(mutex);
      phase.latencies_ms.insert(phase.latencies_ms.end(), mine.begin(), mine.end());
      for (const auto& [s, n] : statuses) phase.by_status[s] += n;
    });
  for (auto& t : clients) t.join();
  phase.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return phase;
}

}  // namespace

nlohmann::json LoadResult::to_json() const {
  nlohmann::json statuses = nlohmann::json::object();
  for (const auto& [s, n] : by_status) statuses[std::to_string(s)] = n;
  return {{"answered", answered}, {"failed", failed},   {"by_status", statuses}, {"seconds", seconds},
          {"throughput", throughput}, {"p50_ms", p50_ms}, {"p90_ms", p90_ms},     {"p99_ms", p99_ms},
          {"max_ms", max_ms},         {"mean_ms", mean_ms}};
}

LoadResult run_load(const LoadOptions& o, const std::vector<std::string>& bodies) {
  if (bodies.empty()) throw ConfigError("kd bench serve: no request bodies");
  if (o.concurrency < 1 || o.requests < 1 || o.warmup < 0 || !(o.max_seconds > 0))
    throw ConfigError("kd bench serve: concurrency and requests must be >= 1, warm-up >= 0, the time > 0");
  if (o.warmup > 0) run_phase(o, bodies, o.warmup, o.max_seconds);
  auto phase = run_phase(o, bodies, o.requests, o.max_seconds);
  LoadResult r;
  r.by_status = phase.by_status;
  r.seconds = phase.seconds;
  for (const auto& [s, n] : phase.by_status) (s == 200 ? r.answered : r.failed) += n;
  auto& lat = phase.latencies_ms;
  std::sort(lat.begin(), lat.end());
  r.throughput = r.seconds > 0 ? static_cast<double>(r.answered) / r.seconds : 0;
  // kd's nearest-rank statistics, as every other kd timing (NaN rather than 0 when nothing was answered).
  r.p50_ms = lat.empty() ? NAN : percentile(lat, 0.5);
  r.p90_ms = lat.empty() ? NAN : percentile(lat, 0.9);
  r.p99_ms = lat.empty() ? NAN : percentile(lat, 0.99);
  r.max_ms = lat.empty() ? NAN : lat.back();
  double sum = 0;
  for (double x : lat) sum += x;
  r.mean_ms = lat.empty() ? NAN : sum / static_cast<double>(lat.size());
  return r;
}

}  // namespace kd::serve
