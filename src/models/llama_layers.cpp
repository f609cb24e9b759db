#include "kd/models/llama_layers.h"

#include <cmath>

#include "kd/models/llama.h"

namespace kd {

RmsNormImpl::RmsNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const auto x32 = x.to(torch::kFloat32);
  const auto var = x32.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x32 * torch::rsqrt(var + eps)).to(x.scalar_type());
}

RotaryTables rotary_tables(int64_t head_dim, double theta, int64_t first_position, int64_t count) {
  // Same float32 operations as Hugging Face's default rope, so the tables agree bit for bit.
  const auto exponents = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(head_dim);
  const auto inv_freq = 1.0 / torch::pow(theta, exponents);                                        // (D/2)
  const auto pos = torch::arange(first_position, first_position + count, torch::kInt64).to(torch::kFloat32);  // (T)
  const auto freqs = torch::outer(pos, inv_freq);                                                  // (T, D/2)
  const auto emb = torch::cat({freqs, freqs}, -1);                                                 // (T, D)
  return {emb.cos(), emb.sin()};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& r) {
  const int64_t half = x.size(-1) / 2;
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  const auto rotated = torch::cat({-x2, x1}, -1);
  return x * r.cos + rotated * r.sin;
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaOptions& o)
    : heads_(o.num_heads), kv_heads_(o.num_kv_heads), head_dim_(o.head_dim()) {
  using torch::nn::LinearOptions;
  q_proj = register_module("q_proj", torch::nn::Linear(LinearOptions(o.hidden_size, heads_ * head_dim_).bias(false)));
  k_proj = register_module("k_proj", torch::nn::Linear(LinearOptions(o.hidden_size, kv_heads_ * head_dim_).bias(false)));
  v_proj = register_module("v_proj", torch::nn::Linear(LinearOptions(o.hidden_size, kv_heads_ * head_dim_).bias(false)));
  o_proj = register_module("o_proj", torch::nn::Linear(LinearOptions(heads_ * head_dim_, o.hidden_size).bias(false)));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const RotaryTables& rope, const torch::Tensor& bias,
                                          torch::Tensor* cache_k, torch::Tensor* cache_v) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, heads_, head_dim_}).transpose(1, 2);     // (B, heads, T, D)
  auto k = k_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);  // (B, kv_heads, T, D)
  auto v = v_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);  // (B, kv_heads, T, D)
  q = apply_rotary(q, rope);
  k = apply_rotary(k, rope);
  if (cache_k) {
    if (cache_k->defined()) {
      k = torch::cat({*cache_k, k}, 2);
      v = torch::cat({*cache_v, v}, 2);
    }
    *cache_k = k;
    *cache_v = v;
  }
  // Each group of heads/kv_heads query heads reads the same key/value head.
  const int64_t group = heads_ / kv_heads_;
  if (group > 1) {
    k = k.repeat_interleave(group, 1);  // (B, heads, T_past + T, D)
    v = v.repeat_interleave(group, 1);
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim_)));
  scores = scores + bias;                                            // (B, heads, T, T_past + T)
  const auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  const auto out = torch::matmul(probs, v).transpose(1, 2).reshape({B, T, heads_ * head_dim_});
  return o_proj(out);
}

LlamaMlpImpl::LlamaMlpImpl(const LlamaOptions& o) {
  using torch::nn::LinearOptions;
  gate_proj = register_module("gate_proj", torch::nn::Linear(LinearOptions(o.hidden_size, o.intermediate_size).bias(false)));
  up_proj = register_module("up_proj", torch::nn::Linear(LinearOptions(o.hidden_size, o.intermediate_size).bias(false)));
  down_proj = register_module("down_proj", torch::nn::Linear(LinearOptions(o.intermediate_size, o.hidden_size).bias(false)));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

LlamaLayerImpl::LlamaLayerImpl(const LlamaOptions& o) {
  input_layernorm = register_module("input_layernorm", RmsNorm(o.hidden_size, o.rms_eps));
  self_attn = register_module("self_attn", LlamaAttention(o));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(o.hidden_size, o.rms_eps));
  mlp = register_module("mlp", LlamaMlp(o));
}

torch::Tensor LlamaLayerImpl::forward(const torch::Tensor& x, const RotaryTables& rope, const torch::Tensor& bias,
                                      torch::Tensor* cache_k, torch::Tensor* cache_v) {
  const auto h = x + self_attn(input_layernorm(x), rope, bias, cache_k, cache_v);
  return h + mlp(post_attention_layernorm(h));
}

}  // namespace kd
