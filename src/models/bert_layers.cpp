#include "kd/models/bert_layers.h"

#include <cmath>
#include <limits>

#include "kd/error.h"

namespace kd {

torch::Tensor bert_additive_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  if (!attention_mask.defined()) return {};
  double lowest = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(torch::kHalf, torch::kBFloat16, dtype, "bert_additive_mask", [&] {
    lowest = static_cast<double>(std::numeric_limits<scalar_t>::lowest());
  });
  // (1 - mask) * lowest, computed in the model's dtype as Hugging Face does, so that the bias and
  // therefore the softmax inputs are bit-identical to the reference.
  auto keep = attention_mask.to(dtype);                               // (B, T)
  return (1.0 - keep).mul_(lowest).unsqueeze(1).unsqueeze(1);         // (B, 1, 1, T)
}

bool bert_activation_known(const std::string& name) {
  return name == "gelu" || name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "relu";
}

torch::Tensor bert_activation(const torch::Tensor& x, const std::string& name) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  throw ConfigError(located("hidden_act", "unsupported activation '" + name + "'",
                            "use gelu, gelu_new, gelu_pytorch_tanh or relu"));
}

// ---------------------------------------------------------------------------------------------------

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertOptions& o) {
  auto word = torch::nn::EmbeddingOptions(o.vocab_size, o.hidden_size);
  // Hugging Face passes padding_idx, which keeps the pad row's gradient at zero during training.
  if (o.pad_token_id >= 0) word.padding_idx(o.pad_token_id);
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(word));
  position_embeddings = register_module(
      "position_embeddings", torch::nn::Embedding(o.max_position_embeddings, o.hidden_size));
  token_type_embeddings =
      register_module("token_type_embeddings", torch::nn::Embedding(o.type_vocab_size, o.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size}).eps(o.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(o.hidden_dropout_prob));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids) {
  const int64_t T = input_ids.size(1);
  torch::Tensor x = word_embeddings(input_ids);  // (B, T, H)
  // Without segment ids every token is segment 0: adding row 0 by broadcast gives the same values
  // as an embedding lookup of zeros, without building a (B, T) index tensor.
  if (token_type_ids.defined()) {
    x = x + token_type_embeddings(token_type_ids);
  } else {
    x = x + token_type_embeddings->weight[0];  // (H)
  }
  // Positions are 0..T-1 for every row, so a narrow view of the table replaces a gather.
  x = x + position_embeddings->weight.narrow(0, 0, T);  // (T, H)
  return dropout(LayerNorm(x));
}

// ---------------------------------------------------------------------------------------------------

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertOptions& o)
    : heads_(o.num_attention_heads),
      head_dim_(o.hidden_size / o.num_attention_heads),
      dropout_p_(o.attention_probs_dropout_prob) {
  query = register_module("query", DynamicLinear(o.hidden_size, o.hidden_size));
  key = register_module("key", DynamicLinear(o.hidden_size, o.hidden_size));
  value = register_module("value", DynamicLinear(o.hidden_size, o.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(o.attention_probs_dropout_prob));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask_bias,
                                             BertLayerFeatures* features, bool first_token_only) {
  TORCH_CHECK(!(first_token_only && features && (features->want_probs || features->want_scores || features->want_qkv)),
              "BertSelfAttention: per-layer features need every query position");
  const int64_t B = hidden.size(0), T = hidden.size(1), H = hidden.size(2);
  const int64_t Tq = first_token_only ? 1 : T;  // query positions
  auto split_heads = [&](const torch::Tensor& x) {  // (B, t, H) -> (B, heads, t, head_dim), a view
    return x.view({B, x.size(1), heads_, head_dim_}).transpose(1, 2);
  };
  const torch::Tensor q_flat = query(first_token_only ? hidden.narrow(1, 0, 1) : hidden);  // (B, Tq, H)
  const torch::Tensor k_flat = key(hidden), v_flat = value(hidden);                        // (B, T, H)
  if (features && features->want_qkv) {
    features->query = q_flat;
    features->key = k_flat;
    features->value = v_flat;
  }
  torch::Tensor q = split_heads(q_flat), k = split_heads(k_flat), v = split_heads(v_flat);

  torch::Tensor context;  // (B, heads, T, head_dim)
  if (features && (features->want_probs || features->want_scores)) {
    // Same order of operations as Hugging Face's eager attention: divide the raw scores, then add the
    // mask. In-place is safe for autograd (neither matmul nor division needs its output for backward)
    // unless the raw scores are themselves returned.
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2));  // (B, heads, T, T)
    scores.div_(std::sqrt(static_cast<double>(head_dim_)));
    if (features->want_scores) {
      features->scores = scores;
      if (mask_bias.defined()) scores = scores + mask_bias;
    } else if (mask_bias.defined()) {
      scores.add_(mask_bias);
    }
    torch::Tensor probs = dropout(torch::softmax(scores, -1));  // (B, heads, T, T)
    if (features->want_probs) features->probs = probs;
    context = torch::matmul(probs, v);
  } else {
    context = torch::scaled_dot_product_attention(
        q, k, v, mask_bias.defined() ? std::optional<torch::Tensor>(mask_bias) : std::nullopt,
        is_training() ? dropout_p_ : 0.0, /*is_causal=*/false);
  }
  // Merging the heads needs a copy: the head axis sits between batch and time.
  return context.transpose(1, 2).reshape({B, Tq, H});  // (B, Tq, H)
}

// ---------------------------------------------------------------------------------------------------

BertResidualOutputImpl::BertResidualOutputImpl(int64_t in_features, const BertOptions& o) {
  dense = register_module("dense", DynamicLinear(in_features, o.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size}).eps(o.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(o.hidden_dropout_prob));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);  // (B, T, H)
}

BertAttentionImpl::BertAttentionImpl(const BertOptions& o) {
  self_attn = register_module("self", BertSelfAttention(o));
  output = register_module("output", BertResidualOutput(o.hidden_size, o));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask_bias,
                                         BertLayerFeatures* features, bool first_token_only) {
  return output(self_attn(hidden, mask_bias, features, first_token_only),
                first_token_only ? hidden.narrow(1, 0, 1) : hidden);  // (B, Tq, H)
}

BertIntermediateImpl::BertIntermediateImpl(const BertOptions& o) : act_(o.hidden_act) {
  dense = register_module("dense", DynamicLinear(o.hidden_size, o.intermediate_size));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& hidden) {
  return bert_activation(dense(hidden), act_);  // (B, T, intermediate)
}

BertLayerImpl::BertLayerImpl(const BertOptions& o) {
  attention = register_module("attention", BertAttention(o));
  intermediate = register_module("intermediate", BertIntermediate(o));
  output = register_module("output", BertResidualOutput(o.intermediate_size, o));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask_bias,
                                     BertLayerFeatures* features, bool first_token_only) {
  auto attended = attention(hidden, mask_bias, features, first_token_only);  // (B, Tq, H)
  return output(intermediate(attended), attended);                           // (B, Tq, H)
}

BertEncoderImpl::BertEncoderImpl(const BertOptions& o) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_hidden_layers; ++i) {
    layers_.emplace_back(o);
    layer->push_back(layers_.back());
  }
}

BertPoolerImpl::BertPoolerImpl(const BertOptions& o) {
  dense = register_module("dense", DynamicLinear(o.hidden_size, o.hidden_size));
}

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& hidden) {
  return torch::tanh(dense(hidden.select(1, 0)));  // (B, H), from the first ([CLS]) token
}

}  // namespace kd
