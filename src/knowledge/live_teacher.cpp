#include "kd/knowledge/knowledge_source.h"

namespace kd {

torch::Tensor LiveTeacher::logits(const Batch& batch) {
  // NoGradGuard rather than InferenceMode: inference tensors cannot later enter an autograd graph,
  // and the student's loss combines these logits with tensors that need gradients.
  torch::NoGradGuard no_grad;
  torch::nn::Module& module = teacher_.module();
  // The teacher is frozen: dropout must be off, every call.
  if (module.is_training()) module.eval();
  // Follow the teacher's device, so callers can collate on the CPU whatever the teacher runs on.
  const auto params = module.parameters();
  if (!params.empty() && batch.input_ids.defined() && batch.input_ids.device() != params.front().device())
    return teacher_.forward(batch.to(params.front().device())).logits.to(torch::kFloat32).detach();  // (B, C)
  return teacher_.forward(batch).logits.to(torch::kFloat32).detach();  // (B, C)
}

int64_t LiveTeacher::num_classes() const { return teacher_.labels().size(); }

}  // namespace kd
