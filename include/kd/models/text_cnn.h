// A convolutional sentence classifier (Kim 2014, "Convolutional Neural Networks for Sentence
// Classification"):
//
//   word embedding (V, E) [-> projection E_in -> E], zeroed at padding   (B, T, E)
//   -> per kernel size k: Conv1d(E -> F, k) -> ReLU -> max over the valid windows   (B, F)
//   -> concat (B, K*F) -> dropout -> Linear(K*F -> C)
//
// Padding never reaches the prediction: padded positions are zeroed after the embedding, and the max
// over time only sees windows that lie inside the row (the others are set to -inf). A row shorter than
// a kernel has no such window; the time axis is padded (with zeros) to the largest kernel size and the
// row keeps its first window, which then reads the row and zeros, whatever the batch's width.
//
// Parameter names: embedding.weight, projection.weight (only when projection > 0),
// convs.<i>.{weight,bias} (i follows kernel_sizes), classifier.{weight,bias}.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kd/models/dynamic_linear.h"
#include "kd/models/student_net.h"

namespace kd {

struct TextCnnOptions {
  int64_t vocab_size = 0;
  int64_t embedding_dim = 300;
  std::vector<int64_t> kernel_sizes = {3, 4, 5};
  int64_t filters = 100;  // per kernel size
  double dropout = 0.5;
  int64_t num_classes = 2;
  int64_t padding_idx = 0;
  int64_t projection = 0;  // as BiLstmOptions::projection

  int64_t table_dim() const { return projection > 0 ? projection : embedding_dim; }
  int64_t max_kernel() const;
  template <class Self, class F>
  static void visit_fields(Self& o, F&& f) {
    f("vocab_size", o.vocab_size);
    f("embedding_dim", o.embedding_dim);
    f("kernel_sizes", o.kernel_sizes);
    f("filters", o.filters);
    f("dropout", o.dropout);
    f("num_classes", o.num_classes);
    f("padding_idx", o.padding_idx);
    f("projection", o.projection);
  }
  nlohmann::json to_json() const;
  static TextCnnOptions from_json(const nlohmann::json& j, const std::string& where);
};

class TextCnnImpl : public StudentNetImpl, public Int8Quantizable {
 public:
  explicit TextCnnImpl(const TextCnnOptions& options);

  // input_ids (B, T) int64; attention_mask (B, T), 1 = token (left-aligned). Returns logits (B, C);
  // `pooled`, when given, receives the concatenated max-pooled features (B, K*F).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        torch::Tensor* pooled = nullptr) override;

  torch::Tensor embed(const torch::Tensor& input_ids) override;  // (B, T, E), before masking
  torch::Tensor word_embeddings() const override { return embedding->weight; }
  double flops_per_example(double tokens) const override;
  nlohmann::json options_json() const override { return options_.to_json(); }

  const TextCnnOptions& options() const { return options_; }
  // Runs each convolution as an int8 matrix product over the unfolded windows (LibTorch's dynamic
  // int8 kernels have no convolution); the Linear layers quantize themselves (kd/models/quantize.h).
  void quantize_int8() override;

  torch::nn::Embedding embedding{nullptr};
  DynamicLinear projection{nullptr};
  torch::nn::ModuleList convs{nullptr};
  torch::nn::Dropout dropout{nullptr};
  DynamicLinear classifier{nullptr};

 private:
  TextCnnOptions options_;
  std::vector<torch::nn::Conv1d> conv_list_;  // typed handles on convs
  std::vector<c10::IValue> int8_convs_;        // empty until quantize_int8()
  // x (B, E, W) -> (B, F, W - k + 1) through convolution i, in float or int8.
  torch::Tensor conv(size_t i, const torch::Tensor& x);
};
TORCH_MODULE(TextCnn);

// Forward FLOPs (multiply-add = 2) for one example of `tokens` tokens: projection, every convolution
// window (the time axis padded to the largest kernel, as in forward) and the classifier.
double text_cnn_flops(const TextCnnOptions& o, double tokens);

}  // namespace kd
