// `POST /v1/classify` for a text classifier (any kind kd saves: BERT teachers and students, BiLSTM, TextCNN):
// texts in, each text's label and class probabilities out, through the dynamic batcher.
//
// Request:  {"texts": ["a review", ...]} or {"text": "a review"}; for sentence-pair models a text is a
//           two-string array ["premise", "hypothesis"].
// Response: {"model": NAME, "results": [{"label": "positive", "probabilities": {"negative": 0.02,
//           "positive": 0.98}}, ...]} in request order.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "kd/models/text_classifier.h"
#include "kd/serve/dynamic_batcher.h"
#include "kd/serve/server_metrics.h"

namespace kd::serve {

class ClassifyService {
 public:
  // The model must already be on its device and in eval mode.
  ClassifyService(std::unique_ptr<TextClassifier> model, std::string name, BatchingOptions batching,
                  ServerMetrics& metrics);

  // RequestError 400 naming the field for a malformed body (no texts, more than `max_texts`, a text that
  // is not a non-empty string or pair), 503 when the queue is full, 504 when the answer takes longer
  // than `timeout_s`.
  nlohmann::json classify(const nlohmann::json& body, int64_t max_texts, double timeout_s);

  int64_t queued_rows() const { return batcher_.queued_rows(); }
  const TextClassifier& model() const { return *model_; }

 private:
  using Texts = std::vector<std::string>;         // one text, or a sentence pair
  using Probabilities = std::vector<double>;      // (C)
  std::vector<Probabilities> run(const std::vector<Texts>& rows);
  nlohmann::json answer(const nlohmann::json& body, int64_t max_texts, double timeout_s);

  std::unique_ptr<TextClassifier> model_;
  std::string name_;
  ServerMetrics& metrics_;
  std::atomic<int64_t> in_flight_{0};  // requests inside classify(), queued or not
  DynamicBatcher<Texts, Probabilities> batcher_;  // last: its worker calls run() on the members above
};

}  // namespace kd::serve
