// The network inside a StudentClassifier: a sentence classifier over the teacher's WordPiece ids that
// kd builds from scratch (BiLSTM, TextCNN). Each kind derives from StudentNetImpl, so StudentClassifier
// saves, loads, profiles and feeds any of them without knowing which one it holds; a new kind is its
// module, its *_student.cpp (config and folder readers) and one line in student_registry.cpp.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace kd {

class StudentNetImpl : public torch::nn::Module {
 public:
  // input_ids (B, T) int64; attention_mask (B, T), 1 = token. Returns logits (B, C); when `pooled` is
  // given it receives the sentence vector the head reads (width is the kind's own).
  virtual torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                torch::Tensor* pooled = nullptr) = 0;
  // The token embeddings the network reads, after any projection: (B, T, E).
  virtual torch::Tensor embed(const torch::Tensor& input_ids) = 0;
  // The embedding table (V, table_dim): the teacher's width when a projection follows it.
  virtual torch::Tensor word_embeddings() const = 0;
  // Forward FLOPs (a multiply-add counts 2) of one example of `tokens` tokens.
  virtual double flops_per_example(double tokens) const = 0;
  // The options the kind's folder reader rebuilds the module from (kd.json "options").
  virtual nlohmann::json options_json() const = 0;
};

}  // namespace kd
