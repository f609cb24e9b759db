// Where a student's soft labels come from: the frozen teacher run live on each batch (online in the
// data pipeline, offline in the sense that the teacher never trains), or logits cached by `kd cache`.
// Both give the same (B, C) teacher logits for a batch, addressed by Batch::row_ids.
#pragma once

#include <torch/torch.h>

#include "kd/data/batch.h"
#include "kd/models/text_classifier.h"

namespace kd {

class KnowledgeSource {
 public:
  virtual ~KnowledgeSource() = default;
  // Teacher logits for the batch's rows: (B, C) float32, no autograd history. Rows the source does not
  // cover are an error (DataError naming the row).
  virtual torch::Tensor logits(const Batch& batch) = 0;
  virtual int64_t num_classes() const = 0;
  // The teacher's logits and the features `features` asks for (hidden states, attention...), detached.
  // A source that holds logits only throws a ConfigError when features are asked for.
  virtual ModelOutput teach(const Batch& batch, const FeatureRequest& features);
};

// Runs the teacher in eval mode without gradients on every batch.
class LiveTeacher : public KnowledgeSource {
 public:
  explicit LiveTeacher(TextClassifier& teacher) : teacher_(teacher) {}
  torch::Tensor logits(const Batch& batch) override;
  int64_t num_classes() const override;
  ModelOutput teach(const Batch& batch, const FeatureRequest& features) override;

 private:
  TextClassifier& teacher_;
};

}  // namespace kd
