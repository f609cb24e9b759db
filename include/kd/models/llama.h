// LLaMA-family causal decoder (Touvron et al. 2023): token embedding, N pre-norm blocks of grouped-query
// self-attention with rotary positions and a SwiGLU MLP (llama_layers.h), a final RMSNorm and an output
// head that is the embedding matrix itself when the checkpoint has no separate one (tied).
//
// Loads GGUF checkpoints (llama.cpp's format; see kd/io/gguf.h) with every tensor dequantized to
// float32. llama.cpp stores Q and K rows permuted for its interleaved rotary layout; they are permuted
// back on load, so the module computes exactly what Hugging Face's LlamaForCausalLM computes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kd/models/llama_layers.h"
#include "kd/models/model_output.h"

namespace kd {

class GgufFile;

struct LlamaOptions {
  int64_t vocab_size = 49152;
  int64_t hidden_size = 576;
  int64_t intermediate_size = 1536;
  int64_t num_layers = 30;
  int64_t num_heads = 9;
  int64_t num_kv_heads = 3;         // grouped-query attention: heads share K/V in groups of heads/kv_heads
  int64_t max_position = 8192;      // context length, in tokens
  double rope_theta = 10000.0;      // rotary base
  double rms_eps = 1e-5;
  bool tie_embeddings = true;       // output head = token embedding matrix

  int64_t head_dim() const { return hidden_size / num_heads; }
  // ConfigError naming the field when sizes do not fit together (heads must divide the width, ...).
  void validate() const;
  // From llama.* metadata (block_count, embedding_length, feed_forward_length, attention.head_count,
  // attention.head_count_kv, context_length, rope.freq_base, attention.layer_norm_rms_epsilon,
  // vocab_size or the tokenizer's token count); tie_embeddings when there is no output.weight.
  static LlamaOptions from_gguf(const GgufFile& file);
};

// Sampling settings for generate(). temperature 0 is greedy decoding (argmax); otherwise logits are
// divided by the temperature and filtered by top-k (0: off) and then top-p (nucleus, 1: off) before
// sampling with a generator seeded by `seed`.
struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int64_t eos_id = -1;  // stop after this token (-1: never stop early)
};

class LlamaImpl : public torch::nn::Module {
 public:
  explicit LlamaImpl(const LlamaOptions& options);

  // input_ids (B, T) int64; attention_mask (B, T_past + T) with 1 for real tokens (undefined: all real);
  // with `cache`, the keys/values of earlier positions are reused and this step's are appended.
  // Returns logits (B, T, V) and, with `hidden_states`, features "hidden.0" (embeddings) ..
  // "hidden.N" (output of layer N, before the final norm), each (B, T, H).
  // A sequence longer than the context is a DataError.
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                      KvCache* cache = nullptr, bool hidden_states = false);
  // The same pass without the output head: the final hidden states after the final norm (B, T, H),
  // from which logits are head_weight() applied row by row. For losses that form logits a chunk of
  // tokens at a time (kd/losses/chunked_lm_loss.h).
  torch::Tensor forward_hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                               KvCache* cache = nullptr, ModelOutput* features = nullptr);

  // Continues one prompt (batch 1) with the KV cache; calls `on_token` with each new token as soon as
  // it is chosen (returning false stops). Returns the new tokens (not the prompt).
  std::vector<int64_t> generate(const std::vector<int64_t>& prompt, const GenerateOptions& options,
                                const std::function<bool(int64_t)>& on_token = {});

  const LlamaOptions& options() const { return options_; }
  torch::Tensor head_weight() const;  // (V, H): lm_head, or the embedding matrix when tied

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tied

 private:
  LlamaOptions options_;
};
TORCH_MODULE(Llama);

// Name and shape of every parameter of a model with these options, in named_parameters() order and
// naming (embed_tokens.weight, layers.N.input_layernorm.weight, layers.N.self_attn.q_proj.weight, ...,
// norm.weight, and lm_head.weight unless tied), computed without building the model: a checkpoint's
// tensors can be checked against it before anything of the model's size is allocated.
std::vector<std::pair<std::string, std::vector<int64_t>>> llama_parameter_shapes(const LlamaOptions& o);

// Builds a Llama from a GGUF file's metadata and loads its weights (float32). FormatError naming the
// file and tensor for a missing tensor or a shape that disagrees with the metadata, or a tokenizer
// vocabulary whose size disagrees with the model's.
Llama load_llama_gguf(const std::string& path);
Llama load_llama_gguf(const GgufFile& file);

// llama.cpp's name of a parameter given as named_parameters() names it ("layers.3.self_attn.q_proj.weight"
// -> "blk.3.attn_q.weight"), and the number of heads whose rotary rows the GGUF stores permuted (Q: the
// query heads, K: the key-value heads; 0 for every other tensor).
std::pair<std::string, int64_t> llama_gguf_name(const std::string& param, const LlamaOptions& o);
// llama.cpp's row order of a Q or K matrix (rows, cols) with `heads` heads: within each head, the rows
// [first half | second half] of the rotary dimensions become interleaved pairs (its rope rotates dims
// 2i and 2i+1 together, Hugging Face's i and i + D/2). unpermute_rope_rows is the inverse.
torch::Tensor permute_rope_rows(const torch::Tensor& w, int64_t heads);
torch::Tensor unpermute_rope_rows(const torch::Tensor& w, int64_t heads);

// Chooses the next token from one row of logits (V) as GenerateOptions says.
int64_t sample_next_token(const torch::Tensor& logits, const GenerateOptions& options, torch::Generator& gen);

}  // namespace kd
