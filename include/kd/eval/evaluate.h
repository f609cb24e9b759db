// Runs a classifier over a data set without gradients and scores it, on the device its parameters are on.
#pragma once

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

}  // namespace kd
