#include "kd/knowledge/knowledge_source.h"

#include "kd/error.h"
#include "kd/util/precision.h"

namespace kd {

ModelOutput KnowledgeSource::teach(const Batch& batch, const FeatureRequest& features) {
  if (features.any())
    throw ConfigError(located("distill.features", "the teacher's features (hidden states, attention) are not in a logits cache",
                              "feature terms run the teacher live: set distill.cache: false"));
  ModelOutput out;
  out.logits = logits(batch);
  return out;
}

ModelOutput LiveTeacher::teach(const Batch& batch, const FeatureRequest& features) {
  // NoGradGuard rather than InferenceMode: inference tensors cannot later enter an autograd graph,
  // and the student's loss combines these outputs with tensors that need gradients.
  torch::NoGradGuard no_grad;
  torch::nn::Module& module = teacher_.module();
  // The teacher is frozen: dropout must be off, every call.
  if (module.is_training()) module.eval();
  // Follow the teacher's device, so callers can collate on the CPU whatever the teacher runs on.
  const auto params = module.parameters();
  const bool move = !params.empty() && batch.input_ids.defined() && batch.input_ids.device() != params.front().device();
  const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  ModelOutput out;
  {
    AutocastScope autocast(device);
    out = float32_output(move ? teacher_.forward(batch.to(device), features) : teacher_.forward(batch, features));
  }
  out.logits = out.logits.detach();  // (B, C)
  for (auto& [name, t] : out.features) t = t.detach();
  return out;
}

torch::Tensor LiveTeacher::logits(const Batch& batch) { return teach(batch, {}).logits; }  // (B, C)

int64_t LiveTeacher::num_classes() const { return teacher_.labels().size(); }

}  // namespace kd
