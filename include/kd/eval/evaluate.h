// Runs a classifier over a data set without gradients and scores it, on the device its parameters are on.
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "kd/data/text_dataset.h"
#include "kd/eval/metrics.h"
#include "kd/models/text_classifier.h"

namespace kd {

struct Evaluation {
  ConfusionMatrix confusion{2};
  double mean_loss = 0;        // cross-entropy over labelled rows
  torch::Tensor logits;        // (N, C) in dataset order, on the CPU, when keep_logits
};

Evaluation evaluate(TextClassifier& model, const TextDataset& data, int64_t batch_size,
                    bool keep_logits = false, bool progress = false);

// A model's accuracy and macro-F1 on a set of rows and where the rows came from: the figure a run records
// (summary.json's "test", a distill part's result.json) and compares with a later scoring of the same rows.
struct Score {
  std::string source;  // the rows' file (TextDataset::source)
  double accuracy = NAN, macro_f1 = NAN;
  int64_t rows = 0;
  nlohmann::json to_json() const;
  static Score from_json(const nlohmann::json& j);
};
Score score(TextClassifier& model, const TextDataset& data, int64_t batch_size, bool progress = false);

}  // namespace kd
