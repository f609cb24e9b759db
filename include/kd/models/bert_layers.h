// Building blocks of the BERT encoder. Each module registers its children under the Hugging Face
// attribute names, so that named_parameters() of a BertModel spells exactly the keys of a Hugging
// Face BertModel state dict (embeddings.LayerNorm.weight, encoder.layer.3.attention.self.key.bias...).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "kd/models/bert.h"

namespace kd {

// Additive attention bias from a (B, T) 0/1 mask, as Hugging Face's get_extended_attention_mask:
// 0 where a key may be attended to, the lowest finite value of `dtype` where it is padding. The
// lowest finite value rather than -inf keeps softmax finite even for a row whose keys are all padding.
// Returns (B, 1, 1, T), broadcast over heads and query positions; undefined if the mask is undefined.
torch::Tensor bert_additive_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype);

// The feed-forward nonlinearity named by BertOptions::hidden_act ("gelu" is the exact erf form, as in
// Hugging Face; the tanh forms are the approximation). ConfigError for an unknown name.
bool bert_activation_known(const std::string& name);
torch::Tensor bert_activation(const torch::Tensor& x, const std::string& name);

// What a layer hands back beside its output when distillation asks (each only when its flag is set).
struct BertLayerFeatures {
  bool want_probs = false, want_scores = false, want_qkv = false;
  torch::Tensor probs;              // (B, heads, T, T) attention probabilities after dropout (as HF returns them)
  torch::Tensor scores;             // (B, heads, T, T) QKᵀ/√d before the padding bias and softmax
  torch::Tensor query, key, value;  // (B, T, H) before the head split
};

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertOptions& o);
  // input_ids (B, T); token_type_ids (B, T) or undefined (all segment 0). Returns (B, T, H).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(const BertOptions& o);
  // hidden (B, T, H); mask_bias (B, 1, 1, T) additive or undefined. Returns the context (B, T, H) and
  // fills what `features` asks for. Unless the probabilities or scores are asked for, the fused
  // scaled_dot_product_attention kernel is used, since nothing then needs the (T, T) matrix materialised.
  // With `first_token_only` only position 0 queries (keys and values still cover all T positions) and the
  // context is (B, 1, H); no features may be asked for then.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask_bias,
                        BertLayerFeatures* features = nullptr, bool first_token_only = false);

  DynamicLinear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  int64_t heads_, head_dim_;
  double dropout_p_;
};
TORCH_MODULE(BertSelfAttention);

// Projection after attention or the feed-forward block, then dropout, residual and LayerNorm
// (Hugging Face's BertSelfOutput and BertOutput share this shape; only the input width differs).
class BertResidualOutputImpl : public torch::nn::Module {
 public:
  BertResidualOutputImpl(int64_t in_features, const BertOptions& o);
  // x (B, T, in_features), residual (B, T, H). Returns (B, T, H).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  DynamicLinear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertOptions& o);
  // (B, T, H), or (B, 1, H) for position 0 alone with `first_token_only` (BertSelfAttention).
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask_bias,
                        BertLayerFeatures* features = nullptr, bool first_token_only = false);

  BertSelfAttention self_attn{nullptr};  // registered as "self" (HF's attribute name)
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

class BertIntermediateImpl : public torch::nn::Module {
 public:
  explicit BertIntermediateImpl(const BertOptions& o);
  torch::Tensor forward(const torch::Tensor& hidden);  // (B, T, H) -> (B, T, intermediate)

  DynamicLinear dense{nullptr};

 private:
  std::string act_;
};
TORCH_MODULE(BertIntermediate);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertOptions& o);
  // Returns the layer output (B, T, H) and fills what `features` asks for. With `first_token_only`, the
  // output of position 0 alone (B, 1, H), which attends to all T positions: what a pooler reading [CLS]
  // needs from the last layer, at the cost of the key and value projections only for the other rows.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask_bias,
                        BertLayerFeatures* features = nullptr, bool first_token_only = false);

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

// Holds the layers only: the loop over them lives in BertModel, which collects per-layer features.
class BertEncoderImpl : public torch::nn::Module {
 public:
  explicit BertEncoderImpl(const BertOptions& o);

  torch::nn::ModuleList layer{nullptr};  // registered as "layer": keys read encoder.layer.<i>.
  std::vector<BertLayer>& layers() { return layers_; }

 private:
  std::vector<BertLayer> layers_;  // typed handles on the ModuleList's entries
};
TORCH_MODULE(BertEncoder);

class BertPoolerImpl : public torch::nn::Module {
 public:
  explicit BertPoolerImpl(const BertOptions& o);
  torch::Tensor forward(const torch::Tensor& hidden);  // (B, T, H) -> tanh(dense(hidden[:, 0])) (B, H)

  DynamicLinear dense{nullptr};
};
TORCH_MODULE(BertPooler);

}  // namespace kd
