#include "kd/eval/metrics.h"

#include "kd/error.h"

namespace kd {

ConfusionMatrix::ConfusionMatrix(int64_t num_classes)
    : n_(num_classes), counts_(static_cast<size_t>(num_classes * num_classes), 0) {}

void ConfusionMatrix::add(int64_t prediction, int64_t label) {
  if (label < 0) return;
  if (label >= n_ || prediction < 0 || prediction >= n_)
    throw Error("confusion matrix: class id out of range (" + std::to_string(label) + ", " +
                std::to_string(prediction) + " of " + std::to_string(n_) + ")");
  ++counts_[static_cast<size_t>(label * n_ + prediction)];
  ++total_;
}

void ConfusionMatrix::add(const torch::Tensor& predictions, const torch::Tensor& labels) {
  auto p = predictions.to(torch::kCPU, torch::kLong).contiguous();
  auto l = labels.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* pp = p.data_ptr<int64_t>();
  const int64_t* lp = l.data_ptr<int64_t>();
  for (int64_t i = 0; i < p.numel(); ++i) add(pp[i], lp[i]);
}

double ConfusionMatrix::accuracy() const {
  if (total_ == 0) return 0.0;
  int64_t correct = 0;
  for (int64_t c = 0; c < n_; ++c) correct += at(c, c);
  return static_cast<double>(correct) / static_cast<double>(total_);
}

double ConfusionMatrix::macro_f1() const {
  double sum = 0.0;
  int64_t classes = 0;
  for (int64_t c = 0; c < n_; ++c) {
    int64_t tp = at(c, c), actual = 0, predicted = 0;
    for (int64_t k = 0; k < n_; ++k) {
      actual += at(c, k);
      predicted += at(k, c);
    }
    if (actual == 0 && predicted == 0) continue;
    sum += 2.0 * static_cast<double>(tp) / static_cast<double>(actual + predicted);
    ++classes;
  }
  return classes == 0 ? 0.0 : sum / static_cast<double>(classes);
}

nlohmann::json ConfusionMatrix::to_json() const {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t r = 0; r < n_; ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t c = 0; c < n_; ++c) row.push_back(at(r, c));
    rows.push_back(row);
  }
  return {{"accuracy", accuracy()}, {"macro_f1", macro_f1()}, {"n", total_}, {"confusion", rows}};
}

}  // namespace kd
