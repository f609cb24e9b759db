// The student as the trainer sees it under a feature objective (distill.features): the student's
// parameters and the objective's own (learned projections) in one module, so that both are optimised,
// checkpointed in last/ and resumed together. While training, forward() asks the student for the
// features the objective reads; in evaluation it asks for none. save() writes the student alone, so
// the trainer's best/ is a deployable model folder.
#pragma once

#include <memory>

#include "kd/losses/feature_terms.h"
#include "kd/models/text_classifier.h"

namespace kd {

class DistillStudent : public TextClassifier {
 public:
  // Both must outlive this object.
  DistillStudent(TextClassifier& student, FeatureObjective objective);

  ModelOutput forward(const Batch& batch, const FeatureRequest& features = {}) override;
  // Children "student" (the student's module) and "objective".
  torch::nn::Module& module() override { return *module_; }
  const WordPieceTokenizer& tokenizer() const override { return student_.tokenizer(); }
  const LabelVocab& labels() const override { return student_.labels(); }
  int64_t max_length() const override { return student_.max_length(); }
  std::string type() const override { return student_.type(); }
  void save(const std::string& dir) const override { student_.save(dir); }
  double flops_per_example(double tokens) const override { return student_.flops_per_example(tokens); }
  torch::Tensor word_embeddings() const override { return student_.word_embeddings(); }
  EncoderShape encoder_shape() const override { return student_.encoder_shape(); }

 private:
  TextClassifier& student_;
  FeatureObjective objective_;
  std::shared_ptr<torch::nn::Module> module_;
};

}  // namespace kd
