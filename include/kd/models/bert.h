// BERT-family encoder (Devlin et al. 2019) in LibTorch, loading Hugging Face checkpoints exactly.
//
// Post-LayerNorm transformer: embeddings (word + position + token type) -> LayerNorm -> dropout, then
// N layers of [multi-head self-attention -> dropout -> residual -> LayerNorm -> GELU feed-forward ->
// dropout -> residual -> LayerNorm]. Padding positions get a large negative bias before the softmax.
// Parameter names follow Hugging Face's BertModel (embeddings.word_embeddings.weight,
// encoder.layer.0.attention.self.query.weight, ...), so state dicts map one to one.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "kd/models/dynamic_linear.h"
#include "kd/models/model_output.h"

namespace kd {

class BertEmbeddingsImpl;
class BertEncoderImpl;
class BertPoolerImpl;

struct BertOptions {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";  // "gelu" (erf), "gelu_new"/"gelu_pytorch_tanh" (tanh), "relu"
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;         // -1: none (config.json null); its embedding row gets no gradient
  double initializer_range = 0.02;  // std of the normal initialisation of fresh weights
  bool add_pooling_layer = true;    // not a Hugging Face config field; written only when false

  // Reads a Hugging Face config.json. Unsupported settings (e.g. position_embedding_type other than
  // "absolute", is_decoder) are a FormatError naming the file and key; a missing file is an IoError.
  // Keys this encoder does not use (architectures, id2label, ...) are ignored.
  static BertOptions from_config_json(const std::string& path);
  // The Hugging Face config.json fields of these options (model_type "bert").
  nlohmann::json to_config_json() const;
};

class BertModelImpl : public torch::nn::Module {
 public:
  explicit BertModelImpl(const BertOptions& options);

  // input_ids, token_type_ids, attention_mask: (B, T) int64; token_type_ids may be undefined (zeros).
  // Returns features "last_hidden" (B, T, H), "pooled" (B, H) when the pooler exists, and the
  // requested per-layer features (FeatureRequest: hidden.i, attn.i, attn_scores.i, query/key/value.i).
  // logits is left undefined (an encoder has no head).
  // `pooled_only`: the last layer computes position 0 alone, all the pooler reads (its attention still
  // covers every position), and only "pooled" is returned; it needs an empty request. Same values up to
  // rounding, less work by the last layer's share of T-1 rows: for a classifier at inference.
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                      const torch::Tensor& attention_mask, const FeatureRequest& request = {},
                      bool pooled_only = false);

  const BertOptions& options() const { return options_; }

 private:
  BertOptions options_;
  // Registered as "embeddings", "encoder" and "pooler" (Hugging Face names); types in bert_layers.h.
  std::shared_ptr<BertEmbeddingsImpl> embeddings_;
  std::shared_ptr<BertEncoderImpl> encoder_;
  std::shared_ptr<BertPoolerImpl> pooler_;  // null without add_pooling_layer
};
TORCH_MODULE(BertModel);

// Encoder + pooler + dropout + linear classifier, as Hugging Face's BertForSequenceClassification.
class BertClassifierImpl : public torch::nn::Module {
 public:
  BertClassifierImpl(const BertOptions& options, int64_t num_labels, double classifier_dropout = -1);

  // logits (B, C); features as BertModel::forward. At inference (eval mode) with no features asked for,
  // the encoder runs pooled_only and "pooled" is the only feature. Training keeps the full last layer, so
  // that dropout draws the same masks as Hugging Face's and as runs made before this shortcut.
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                      const torch::Tensor& attention_mask, const FeatureRequest& request = {});

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  DynamicLinear classifier{nullptr};
  int64_t num_labels() const { return num_labels_; }

 private:
  int64_t num_labels_;
};
TORCH_MODULE(BertClassifier);

// Loads weights from a Hugging Face folder's model.safetensors into the module. Accepts names with or
// without the "bert." prefix (BertModel vs BertForSequenceClassification checkpoints). Every encoder
// parameter must be present with the right shape (FormatError naming the tensor otherwise); a missing
// pooler or classifier is allowed only when `allow_new_head` is set (they keep their initialisation).
// Returns the names of parameters that were not found in the file.
std::vector<std::string> load_bert_weights(torch::nn::Module& module, const std::string& safetensors_path,
                                           bool allow_new_head);

}  // namespace kd
