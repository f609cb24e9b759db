#include "kd/models/llama.h"

#include <limits>

#include "kd/error.h"

namespace kd {

void LlamaOptions::validate() const {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw ConfigError(located(std::string("llama.") + name, "must be positive, got " + std::to_string(v)));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_layers, "num_layers");
  positive(num_heads, "num_heads");
  positive(num_kv_heads, "num_kv_heads");
  positive(max_position, "max_position");
  if (hidden_size % num_heads != 0 || head_dim() % 2 != 0)
    throw ConfigError(located("llama.num_heads", "hidden size " + std::to_string(hidden_size) + " is not " +
                                                     std::to_string(num_heads) + " heads of an even width"));
  if (num_heads % num_kv_heads != 0)
    throw ConfigError(located("llama.num_kv_heads", std::to_string(num_kv_heads) + " key/value heads do not divide " +
                                                        std::to_string(num_heads) + " query heads"));
  if (!(rope_theta > 0) || !(rms_eps > 0))
    throw ConfigError(located("llama.rope_theta", "rope base and RMS epsilon must be positive"));
}

std::vector<std::pair<std::string, std::vector<int64_t>>> llama_parameter_shapes(const LlamaOptions& o) {
  const int64_t H = o.hidden_size, D = o.head_dim(), F = o.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {{"embed_tokens.weight", {o.vocab_size, H}}};
  for (int64_t i = 0; i < o.num_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", {H}});
    out.push_back({p + "self_attn.q_proj.weight", {o.num_heads * D, H}});
    out.push_back({p + "self_attn.k_proj.weight", {o.num_kv_heads * D, H}});
    out.push_back({p + "self_attn.v_proj.weight", {o.num_kv_heads * D, H}});
    out.push_back({p + "self_attn.o_proj.weight", {H, o.num_heads * D}});
    out.push_back({p + "post_attention_layernorm.weight", {H}});
    out.push_back({p + "mlp.gate_proj.weight", {F, H}});
    out.push_back({p + "mlp.up_proj.weight", {F, H}});
    out.push_back({p + "mlp.down_proj.weight", {H, F}});
  }
  out.push_back({"norm.weight", {H}});
  if (!o.tie_embeddings) out.push_back({"lm_head.weight", {o.vocab_size, H}});
  return out;
}

LlamaImpl::LlamaImpl(const LlamaOptions& options) : options_(options) {
  options_.validate();
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(options_.vocab_size, options_.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.num_layers; ++i) layers->push_back(LlamaLayer(options_));
  norm = register_module("norm", RmsNorm(options_.hidden_size, options_.rms_eps));
  if (!options_.tie_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(options_.hidden_size,
                                                                                     options_.vocab_size).bias(false)));
}

torch::Tensor LlamaImpl::head_weight() const { return lm_head ? lm_head->weight : embed_tokens->weight; }

ModelOutput LlamaImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, KvCache* cache,
                               bool hidden_states) {
  ModelOutput out;
  const auto h = forward_hidden(input_ids, attention_mask, cache, hidden_states ? &out : nullptr);
  out.logits = torch::nn::functional::linear(h, head_weight());  // (B, T, V)
  return out;
}

torch::Tensor LlamaImpl::forward_hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                        KvCache* cache, ModelOutput* features) {
  const bool hidden_states = features != nullptr;
  if (input_ids.dim() != 2) throw ConfigError("llama: input_ids must be (B, T), got " + std::to_string(input_ids.dim()) + " dims");
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t past = cache ? cache->length() : 0;
  const int64_t total = past + T;
  if (total > options_.max_position)
    throw DataError("llama: " + std::to_string(total) + " tokens do not fit in the context of " +
                    std::to_string(options_.max_position) + " (hint: shorten the prompt or generate fewer tokens)");

  // Additive mask (B or 1, 1, T, total): query i (position past + i) sees keys 0..past + i that are real.
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  const auto qpos = torch::arange(past, total, torch::kInt64).unsqueeze(1);  // (T, 1)
  const auto kpos = torch::arange(0, total, torch::kInt64).unsqueeze(0);     // (1, total)
  auto blocked = (kpos > qpos).view({1, 1, T, total});
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != B || attention_mask.size(1) != total)
      throw ConfigError("llama: attention_mask must be (B, T_past + T) = (" + std::to_string(B) + ", " +
                        std::to_string(total) + ")");
    blocked = blocked | (attention_mask == 0).view({B, 1, 1, total});
  }
  const auto bias = torch::zeros(blocked.sizes(), opts).masked_fill(blocked, std::numeric_limits<float>::lowest());
  const auto rope = rotary_tables(options_.head_dim(), options_.rope_theta, past, T);

  if (cache && cache->keys.size() != static_cast<size_t>(options_.num_layers)) {
    cache->keys.assign(options_.num_layers, torch::Tensor());
    cache->values.assign(options_.num_layers, torch::Tensor());
  }
  auto h = embed_tokens(input_ids);  // (B, T, H)
  if (hidden_states) features->features["hidden.0"] = h;
  for (int64_t i = 0; i < options_.num_layers; ++i) {
    h = layers[i]->as<LlamaLayerImpl>()->forward(h, rope, bias, cache ? &cache->keys[i] : nullptr,
                                                 cache ? &cache->values[i] : nullptr);
    if (hidden_states) features->features["hidden." + std::to_string(i + 1)] = h;
  }
  return norm(h);  // (B, T, H)
}

}  // namespace kd
