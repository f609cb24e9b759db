// A bidirectional LSTM sentence classifier, the student of Tang et al. (2019), "Distilling
// Task-Specific Knowledge from BERT into Simple Neural Networks":
//
//   word embedding (V, E) [-> projection E_in -> E]  (B, T, E)
//   -> BiLSTM, `layers` deep, H per direction, over the packed valid tokens only   (B, T, 2H)
//   -> pooling: "max" / "mean" over valid steps, or "last" = [forward h_n ; backward h_n]   (B, 2H)
//   -> dropout -> Linear(2H -> H) -> ReLU -> dropout -> Linear(H -> C)   (B, C)
//
// The head uses ReLU, as Tang et al. do ("a fully-connected layer with ReLU activations"); its width is
// the LSTM's per-direction size H. Padding never reaches the prediction: the LSTM runs on a
// PackedSequence built from the mask, so the backward direction starts at each row's true last token
// and a row's logits do not depend on how much padding its batch has.
//
// Parameter names (as PyTorch's nn.LSTM spells them, so golden weights map one to one):
//   embedding.weight, projection.weight (only when projection > 0), lstm.weight_ih_l0,
//   lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0, lstm.*_l0_reverse, ..., hidden.{weight,bias},
//   classifier.{weight,bias}.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "kd/models/dynamic_linear.h"
#include "kd/models/student_net.h"

namespace kd {

struct BiLstmOptions {
  int64_t vocab_size = 0;
  int64_t embedding_dim = 300;  // width the LSTM reads
  int64_t hidden = 300;         // per direction; also the width of the MLP head
  int64_t layers = 1;
  std::string pooling = "max";  // "max" | "mean" | "last"
  double dropout = 0.1;         // head dropout, and between LSTM layers when layers > 1
  int64_t num_classes = 2;
  int64_t padding_idx = 0;      // its embedding row gets no gradient
  // 0: the embedding table is embedding_dim wide. > 0: the table is `projection` wide (e.g. the
  // teacher's hidden size, to start from the teacher's embeddings) and a learned bias-free
  // Linear(projection -> embedding_dim) follows it.
  int64_t projection = 0;

  // Width of the embedding table.
  int64_t table_dim() const { return projection > 0 ? projection : embedding_dim; }
  template <class Self, class F>
  static void visit_fields(Self& o, F&& f) {
    f("vocab_size", o.vocab_size);
    f("embedding_dim", o.embedding_dim);
    f("hidden", o.hidden);
    f("layers", o.layers);
    f("pooling", o.pooling);
    f("dropout", o.dropout);
    f("num_classes", o.num_classes);
    f("padding_idx", o.padding_idx);
    f("projection", o.projection);
  }
  nlohmann::json to_json() const;
  // Missing keys keep their defaults; a wrong type is a FormatError naming `where`.
  static BiLstmOptions from_json(const nlohmann::json& j, const std::string& where);
};

class BiLstmImpl : public StudentNetImpl, public Int8Quantizable {
 public:
  explicit BiLstmImpl(const BiLstmOptions& options);

  // input_ids (B, T) int64; attention_mask (B, T), 1 = token. Returns logits (B, C); when `pooled` is
  // given it receives the pooled sentence vector (B, 2H). Rows with an all-zero mask are read as one
  // token long (packing needs length >= 1); the batcher never produces them.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        torch::Tensor* pooled = nullptr) override;

  // The token embeddings the LSTM reads (after the projection, if any): (B, T, E).
  torch::Tensor embed(const torch::Tensor& input_ids) override;
  torch::Tensor word_embeddings() const override { return embedding->weight; }
  double flops_per_example(double tokens) const override;
  nlohmann::json options_json() const override { return options_.to_json(); }

  const BiLstmOptions& options() const { return options_; }
  // Runs the LSTM's input and recurrent products in int8 (LibTorch's quantized LSTM); the Linear
  // layers quantize themselves (kd/models/quantize.h).
  void quantize_int8() override;

  torch::nn::Embedding embedding{nullptr};
  DynamicLinear projection{nullptr};  // null when options.projection == 0
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  DynamicLinear hidden{nullptr}, classifier{nullptr};

 private:
  // x (B, T, E) -> (out (B, T, 2H), h_n (2L, B, H)), in float or int8.
  std::pair<torch::Tensor, torch::Tensor> run_lstm(const torch::Tensor& x);
  // The same over a packed batch: (packed out, h_n (2L, B, H) in the batch's order).
  std::pair<torch::nn::utils::rnn::PackedSequence, torch::Tensor> run_lstm_packed(
      const torch::nn::utils::rnn::PackedSequence& x);

  BiLstmOptions options_;
  std::vector<c10::IValue> int8_cells_;  // empty until quantize_int8()
};
TORCH_MODULE(BiLstm);

// Forward FLOPs (a multiply-add counts 2) for one example of `tokens` tokens: the projection, the
// four LSTM gates per direction and layer (input and recurrent matrices), and the two head layers.
// Embedding lookups, biases, gate nonlinearities and pooling are not counted.
double bilstm_flops(const BiLstmOptions& o, double tokens);

}  // namespace kd
