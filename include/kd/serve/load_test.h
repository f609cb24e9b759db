// A closed-loop HTTP load generator: `concurrency` clients, each with one keep-alive connection, send the
// next request as soon as their last one is answered, until `requests` are answered or `max_seconds`
// pass. What `kd bench serve` runs against kd serve and against any server that speaks the same JSON
// (the Python peer of bench/serve_bench.py), so both are measured by the same client.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kd::serve {

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string path = "/v1/classify";
  int64_t concurrency = 8;
  int64_t requests = 1000;    // measured requests
  int64_t warmup = 50;        // sent first at the same concurrency, not measured
  double max_seconds = 300;   // the measured phase stops here even if requests remain
};

struct LoadResult {
  int64_t answered = 0, failed = 0;    // failed: no response, or a status other than 200
  std::map<int, int64_t> by_status;    // 0: no response
  double seconds = 0;                  // the measured phase's wall time
  double throughput = 0;               // answered (200) requests per second
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;  // latency of answered requests
  nlohmann::json to_json() const;
};

// `bodies` are POSTed as JSON in turn (request i sends bodies[i % size]).
LoadResult run_load(const LoadOptions& options, const std::vector<std::string>& bodies);

}  // namespace kd::serve
