#include "kd/serve/classify_service.h"

#include <chrono>

#include "kd/data/text_dataset.h"
#include "kd/eval/evaluate.h"
#include "kd/serve/request_error.h"

namespace kd::serve {

ClassifyService::ClassifyService(std::unique_ptr<TextClassifier> model, std::string name, BatchingOptions batching,
                                 ServerMetrics& metrics)
    : model_(std::move(model)),
      name_(std::move(name)),
      metrics_(metrics),
      batcher_(
          batching, [this](const std::vector<Texts>& rows) { return run(rows); },
          // Others may join while more requests are inside classify() than the batch holds: the rest are
          // being parsed, or answered (and their clients about to send again).
          [this](int64_t held) { return in_flight_.load() > held; }) {}

std::vector<ClassifyService::Probabilities> ClassifyService::run(const std::vector<Texts>& texts) {
  metrics_.record_batch(static_cast<int64_t>(texts.size()));
  std::vector<TextRow> rows(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    rows[i].texts = texts[i];
    rows[i].row = static_cast<int64_t>(i);
  }
  TextDataset data(rows, model_->tokenizer(), model_->labels(), model_->max_length(), "request");
  const auto ev = evaluate(*model_, data, static_cast<int64_t>(rows.size()), /*keep_logits=*/true, false);
  const auto probs = torch::softmax(ev.logits.to(torch::kFloat64), -1).contiguous();  // (N, C)
  const auto p = probs.accessor<double, 2>();
  std::vector<Probabilities> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    for (int64_t c = 0; c < probs.size(1); ++c) out[i].push_back(p[static_cast<int64_t>(i)][c]);
  return out;
}

nlohmann::json ClassifyService::classify(const nlohmann::json& body, int64_t max_texts, double timeout_s) {
  ++in_flight_;
  struct Leave {
    std::atomic<int64_t>& n;
    ~Leave() { --n; }
  } leave{in_flight_};
  return answer(body, max_texts, timeout_s);
}

nlohmann::json ClassifyService::answer(const nlohmann::json& body, int64_t max_texts, double timeout_s) {
  if (!body.is_object()) throw RequestError(400, "the body must be a JSON object with \"texts\"");
  const auto* many = find_field(body, "texts");
  const auto* one = find_field(body, "text");
  if (many && one) throw RequestError(400, "give either \"texts\" or \"text\", not both", "texts");
  if (!many && !one) throw RequestError(400, "missing \"texts\" (an array of strings)", "texts");
  nlohmann::json list = many ? *many : nlohmann::json::array({*one});
  const std::string key = many ? "texts" : "text";
  if (!list.is_array()) throw RequestError(400, "'texts' must be an array", "texts");
  if (list.empty()) throw RequestError(400, "'texts' is empty", "texts");
  if (static_cast<int64_t>(list.size()) > max_texts)
    throw RequestError(400, "'texts' has " + std::to_string(list.size()) + " texts; at most " +
                                std::to_string(max_texts) + " per request", "texts");
  std::vector<Texts> rows;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = many ? key + "[" + std::to_string(i) + "]" : key;
    const auto& item = list[i];
    if (item.is_array()) {
      if (item.size() != 2) throw RequestError(400, "'" + at + "' must be a string or a pair of strings", at);
      rows.push_back({text_value(item[0], at + "[0]"), text_value(item[1], at + "[1]")});
    } else {
      rows.push_back({text_value(item, at)});
    }
  }
  std::future<std::vector<Probabilities>> answer;
  try {
    answer = batcher_.submit(std::move(rows));
  } catch (const QueueFull&) {
    throw RequestError(503, "the server is busy (request queue full); retry shortly");
  }
  if (answer.wait_for(std::chrono::duration<double>(timeout_s)) != std::future_status::ready)
    throw RequestError(504, "the request took longer than the server's limit of " + std::to_string(timeout_s) + " s");
  const auto probs = answer.get();  // rethrows a failed batch's error

  nlohmann::json results = nlohmann::json::array();
  const auto& labels = model_->labels();
  for (const auto& p : probs) {
    size_t best = 0;
    nlohmann::json by_label = nlohmann::json::object();
    for (size_t c = 0; c < p.size(); ++c) {
      by_label[labels.name(static_cast<int64_t>(c))] = p[c];
      if (p[c] > p[best]) best = c;
    }
    results.push_back({{"label", labels.name(static_cast<int64_t>(best))}, {"probabilities", by_label}});
  }
  return {{"model", name_}, {"results", results}};
}

}  // namespace kd::serve
