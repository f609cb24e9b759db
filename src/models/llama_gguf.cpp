// LLaMA options and weights from a GGUF file (llama.cpp's tensor names: token_embd, blk.N.attn_q, ...).
#include "kd/error.h"
#include "kd/io/gguf.h"
#include "kd/models/llama.h"

namespace kd {

namespace {

std::string key_where(const GgufFile& f, const std::string& key) { return f.path() + ": key '" + key + "'"; }

// llama.cpp's converter reorders each head's Q/K rows from [first halves | second halves] to
// interleaved pairs (its rope rotates dims 2i, 2i+1); this undoes it: row 2i + j -> j * D/2 + i.
torch::Tensor unpermute_rope_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

std::string shape_str(torch::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void copy_checked(const GgufFile& f, const std::string& name, const torch::Tensor& value, torch::Tensor& param) {
  if (value.sizes() != param.sizes())
    throw FormatError(located(f.path() + ": tensor '" + name + "'", "shape " + shape_str(value.sizes()) +
                                                                         " does not match the model's " +
                                                                         shape_str(param.sizes()) + " from the metadata"));
  torch::NoGradGuard no_grad;
  param.copy_(value);
}

}  // namespace

LlamaOptions LlamaOptions::from_gguf(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama")
    throw FormatError(located(key_where(f, "general.architecture"), "architecture '" + arch + "' is not llama"));
  LlamaOptions o;
  o.num_layers = f.get_int("llama.block_count");
  o.hidden_size = f.get_int("llama.embedding_length");
  o.intermediate_size = f.get_int("llama.feed_forward_length");
  o.num_heads = f.get_int("llama.attention.head_count");
  o.num_kv_heads = f.get_int("llama.attention.head_count_kv", o.num_heads);
  o.max_position = f.get_int("llama.context_length");
  o.rope_theta = f.get_float("llama.rope.freq_base", 10000.0);
  o.rms_eps = f.get_float("llama.attention.layer_norm_rms_epsilon");
  const int64_t n_tokens = f.has("tokenizer.ggml.tokens") ? static_cast<int64_t>(f.get("tokenizer.ggml.tokens").count) : -1;
  // Without llama.vocab_size the embedding matrix (ne = [hidden, vocab]) says how many rows there are.
  const auto* embd = f.contains("token_embd.weight") ? &f.tensor("token_embd.weight") : nullptr;
  o.vocab_size = f.get_int("llama.vocab_size", embd && embd->ne.size() == 2 ? embd->ne[1] : n_tokens);
  if (o.vocab_size <= 0)
    throw FormatError(located(key_where(f, "llama.vocab_size"), "missing, and there is no embedding or tokenizer to count"));
  if (n_tokens >= 0 && n_tokens != o.vocab_size)
    throw FormatError(located(key_where(f, "tokenizer.ggml.tokens"), "the tokenizer has " + std::to_string(n_tokens) +
                                                                         " tokens but the model's vocabulary is " +
                                                                         std::to_string(o.vocab_size)));
  if (f.has("llama.rope.dimension_count") && f.get_int("llama.rope.dimension_count") != o.hidden_size / o.num_heads)
    throw FormatError(located(key_where(f, "llama.rope.dimension_count"), "partial rotary embeddings are not supported"));
  if (f.has("llama.rope.scaling.type") && f.get_string("llama.rope.scaling.type") != "none")
    throw FormatError(located(key_where(f, "llama.rope.scaling.type"), "rope scaling is not supported"));
  o.tie_embeddings = !f.contains("output.weight");
  try {
    o.validate();
  } catch (const ConfigError& e) {
    throw FormatError(located(f.path(), e.what()));
  }
  return o;
}

Llama load_llama_gguf(const GgufFile& f) {
  const auto o = LlamaOptions::from_gguf(f);
  Llama model(o);
  model->eval();
  copy_checked(f, "token_embd.weight", f.load("token_embd.weight"), model->embed_tokens->weight);
  copy_checked(f, "output_norm.weight", f.load("output_norm.weight"), model->norm->weight);
  if (model->lm_head) copy_checked(f, "output.weight", f.load("output.weight"), model->lm_head->weight);
  for (int64_t i = 0; i < o.num_layers; ++i) {
    auto* layer = model->layers[i]->as<LlamaLayerImpl>();
    const std::string p = "blk." + std::to_string(i) + ".";
    auto load = [&](const std::string& name, torch::Tensor& param, int64_t rope_heads = 0) {
      auto w = f.load(p + name);
      if (rope_heads && w.dim() == 2 && w.size(0) % (2 * rope_heads) == 0) w = unpermute_rope_rows(w, rope_heads);
      copy_checked(f, p + name, w, param);
    };
    load("attn_norm.weight", layer->input_layernorm->weight);
    load("attn_q.weight", layer->self_attn->q_proj->weight, o.num_heads);
    load("attn_k.weight", layer->self_attn->k_proj->weight, o.num_kv_heads);
    load("attn_v.weight", layer->self_attn->v_proj->weight);
    load("attn_output.weight", layer->self_attn->o_proj->weight);
    load("ffn_norm.weight", layer->post_attention_layernorm->weight);
    load("ffn_gate.weight", layer->mlp->gate_proj->weight);
    load("ffn_up.weight", layer->mlp->up_proj->weight);
    load("ffn_down.weight", layer->mlp->down_proj->weight);
  }
  return model;
}

Llama load_llama_gguf(const std::string& path) { return load_llama_gguf(GgufFile(path)); }

}  // namespace kd
