// LLaMA options and weights from a GGUF file (llama.cpp's tensor names: token_embd, blk.N.attn_q, ...).
#include "kd/error.h"
#include "kd/io/gguf.h"
#include "kd/models/llama.h"

namespace kd {

namespace {

std::string key_where(const GgufFile& f, const std::string& key) { return f.path() + ": key '" + key + "'"; }

std::string shape_str(torch::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void check_shape(const GgufFile& f, const std::string& name, const std::vector<int64_t>& expected) {
  const auto shape = f.tensor(name).torch_shape();
  if (shape != expected)
    throw FormatError(located(f.path() + ": tensor '" + name + "'", "shape " + shape_str(shape) +
                                                                         " does not match the model's " +
                                                                         shape_str(expected) + " from the metadata"));
}

}  // namespace

// llama.cpp's converter reorders each head's Q/K rows from [first halves | second halves] to
// interleaved pairs (its rope rotates dims 2i, 2i+1): row j * D/2 + i -> 2i + j. Both act on (rows, cols).
torch::Tensor permute_rope_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.reshape({heads, 2, rows / heads / 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

torch::Tensor unpermute_rope_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

// llama.cpp's name of a parameter (named as LlamaImpl::named_parameters() does), and the number of
// heads whose rotary rows it stores permuted (0: not permuted).
std::pair<std::string, int64_t> llama_gguf_name(const std::string& param, const LlamaOptions& o) {
  static const std::pair<const char*, const char*> top[] = {
      {"embed_tokens.weight", "token_embd.weight"}, {"norm.weight", "output_norm.weight"}, {"lm_head.weight", "output.weight"}};
  static const std::pair<const char*, const char*> layer[] = {
      {"input_layernorm.weight", "attn_norm.weight"}, {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  for (const auto& [hf, gg] : top)
    if (param == hf) return {gg, 0};
  const auto dot = param.find('.', 7);  // "layers.N.rest"
  const std::string block = "blk." + param.substr(7, dot - 7) + ".", rest = param.substr(dot + 1);
  for (const auto& [hf, gg] : layer)
    if (rest == hf) return {block + gg, rest == "self_attn.q_proj.weight" ? o.num_heads
                                        : rest == "self_attn.k_proj.weight" ? o.num_kv_heads : 0};
  throw std::logic_error("llama: no GGUF name for parameter " + param);
}

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
  // Nine tensors a layer: a block count the file cannot hold is refused before listing them all.
  if (static_cast<uint64_t>(o.num_layers) > f.tensors().size() / 9)
    throw FormatError(located(key_where(f, "llama.block_count"), std::to_string(o.num_layers) + " layers, but the file has only " +
                                                                     std::to_string(f.tensors().size()) + " tensors"));
  const auto shapes = llama_parameter_shapes(o);
  // Every tensor is checked against the metadata before a model of that size is allocated.
  for (const auto& [name, shape] : shapes) check_shape(f, llama_gguf_name(name, o).first, shape);
  Llama model(o);
  model->eval();
  auto params = model->named_parameters();
  torch::NoGradGuard no_grad;
  for (const auto& [name, shape] : shapes) {
    const auto [gg, rope_heads] = llama_gguf_name(name, o);
    auto w = f.load(gg);
    if (rope_heads) w = unpermute_rope_rows(w, rope_heads);
    params[name].copy_(w);
  }
  return model;
}

Llama load_llama_gguf(const std::string& path) { return load_llama_gguf(GgufFile(path)); }

}  // namespace kd
