// Classification metrics from a confusion matrix.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace kd {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t num_classes);

  // predictions, labels: (B) int64; rows with label < 0 (unlabelled) are skipped.
  void add(const torch::Tensor& predictions, const torch::Tensor& labels);
  void add(int64_t prediction, int64_t label);

  int64_t total() const { return total_; }
  double accuracy() const;
  // Unweighted mean of per-class F1; a class that never occurs and is never predicted is left out
  // (scikit-learn counts it as 0 with a warning; leaving it out keeps small eval sets meaningful).
  double macro_f1() const;
  int64_t at(int64_t label, int64_t prediction) const { return counts_[label * n_ + prediction]; }
  nlohmann::json to_json() const;  // {"accuracy", "macro_f1", "n", "confusion": [[...]]}

 private:
  int64_t n_;
  int64_t total_ = 0;
  std::vector<int64_t> counts_;  // row = true label, column = prediction
};

}  // namespace kd
