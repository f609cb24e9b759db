#include "kd/train/distill_student.h"

namespace kd {

DistillStudent::DistillStudent(TextClassifier& student, FeatureObjective objective)
    : student_(student), objective_(std::move(objective)), module_(std::make_shared<torch::nn::Module>("DistillStudent")) {
  // The student's module is owned by a shared_ptr (a ModuleHolder), so it can be shared, not copied.
  module_->register_module("student", student_.module().shared_from_this());
  module_->register_module("objective", objective_.ptr());
}

ModelOutput DistillStudent::forward(const Batch& batch, const FeatureRequest& features) {
  if (!module_->is_training()) return student_.forward(batch, features);
  FeatureRequest want = objective_->needs();
  want |= features;
  return student_.forward(batch, want);
}

}  // namespace kd
