// Building blocks of the LLaMA decoder (Touvron et al. 2023): RMSNorm, rotary position embeddings,
// grouped-query self-attention with a KV cache, and the SwiGLU feed-forward. Parameter names follow
// Hugging Face's LlamaModel (self_attn.q_proj, mlp.gate_proj, input_layernorm, ...).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace kd {

struct LlamaOptions;

// Root-mean-square layer norm (Zhang & Sennrich 2019): x / sqrt(mean(x²) + eps) * weight, computed in
// float32 whatever the input type.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., dim) -> (..., dim)
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

// Rotary embeddings (Su et al. 2021) in Hugging Face's "rotate half" layout: dimension i of a head is
// paired with dimension i + D/2 (not with i + 1 as in llama.cpp; the GGUF loader permutes Q/K rows to
// this layout). Angle of pair i at position p: p * theta^(-2i/D).
struct RotaryTables {
  torch::Tensor cos, sin;  // (T, D) for the positions asked for
};
RotaryTables rotary_tables(int64_t head_dim, double theta, int64_t first_position, int64_t count);
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& r);  // x (B, heads, T, D)

// Keys and values of every layer for the positions seen so far, for incremental decoding.
struct KvCache {
  std::vector<torch::Tensor> keys, values;  // per layer (B, kv_heads, T_past, D)
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  void clear() { keys.clear(); values.clear(); }
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const LlamaOptions& o);
  // x (B, T, H); bias (B or 1, 1, T, T_past + T) additive mask; k/v cache slots of this layer (may be
  // undefined, and are extended in place when `cache` is set). Returns (B, T, H).
  torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rope, const torch::Tensor& bias,
                        torch::Tensor* cache_k, torch::Tensor* cache_v);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(LlamaAttention);

// SwiGLU feed-forward (Shazeer 2020): down(silu(gate(x)) * up(x)).
class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const LlamaOptions& o);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, H) -> (B, T, H)
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

// Pre-norm block: x + attn(norm(x)), then h + mlp(norm(h)).
class LlamaLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaLayerImpl(const LlamaOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rope, const torch::Tensor& bias,
                        torch::Tensor* cache_k, torch::Tensor* cache_v);  // (B, T, H) -> (B, T, H)
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
};
TORCH_MODULE(LlamaLayer);

}  // namespace kd
