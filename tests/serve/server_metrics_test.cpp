#include "kd/serve/server_metrics.h"

#include <gtest/gtest.h>


namespace {

bool has_line(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

TEST(ServerMetricsTest, PrometheusTextCountsRequestsLatencyBatchesAndGauges) {
  kd::serve::ServerMetrics m;
  m.record_request("/v1/classify", 200, 0.003);
  m.record_request("/v1/classify", 200, 0.2);
  m.record_request("/v1/classify", 400, 0.0001);
  m.record_batch(3);
  m.record_batch(32);
  double depth = 7;
  m.add_gauge("kd_queue_depth", "Rows waiting.", [&] { return depth; });
  const auto text = "\n" + m.prometheus();
  EXPECT_TRUE(has_line(text, "# TYPE kd_requests_total counter"));
  EXPECT_TRUE(has_line(text, "kd_requests_total{route=\"/v1/classify\",status=\"200\"} 2"));
  EXPECT_TRUE(has_line(text, "kd_requests_total{route=\"/v1/classify\",status=\"400\"} 1"));
  // Buckets are cumulative: 0.0001 and 0.003 are <= 0.005; all three <= 0.25 and +Inf.
  EXPECT_TRUE(has_line(text, "kd_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.001\"} 1"));
  EXPECT_TRUE(has_line(text, "kd_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.005\"} 2"));
  EXPECT_TRUE(has_line(text, "kd_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.1\"} 2"));
  EXPECT_TRUE(has_line(text, "kd_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.25\"} 3"));
  EXPECT_TRUE(has_line(text, "kd_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, "kd_request_duration_seconds_count{route=\"/v1/classify\"} 3"));
  EXPECT_TRUE(has_line(text, "kd_batch_rows_bucket{le=\"2\"} 0"));
  EXPECT_TRUE(has_line(text, "kd_batch_rows_bucket{le=\"4\"} 1"));
  EXPECT_TRUE(has_line(text, "kd_batch_rows_bucket{le=\"32\"} 2"));
  EXPECT_TRUE(has_line(text, "kd_batch_rows_sum 35"));
  EXPECT_TRUE(has_line(text, "kd_queue_depth 7"));
  depth = 2;  // read when scraped
  EXPECT_TRUE(has_line("\n" + m.prometheus(), "kd_queue_depth 2"));
}

}  // namespace
