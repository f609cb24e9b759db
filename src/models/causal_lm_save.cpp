// Writing a causal LM and its tokenizer as a Hugging Face LLaMA folder.
#include <nlohmann/json.hpp>

#include <filesystem>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "kd/models/causal_lm.h"
#include "kd/models/causal_lm_folder.h"
#include "kd/text/unicode.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace kd {

namespace {

json id_or_null(int64_t id) { return id < 0 ? json(nullptr) : json(id); }

json token_or_null(const BpeTokenizer& tok, int64_t id) { return id < 0 ? json(nullptr) : json(tok.token(id)); }

}  // namespace

json llama_config_json(const LlamaOptions& o, int64_t bos_id, int64_t eos_id, int64_t pad_id) {
  return {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", o.vocab_size},
      {"hidden_size", o.hidden_size},
      {"intermediate_size", o.intermediate_size},
      {"num_hidden_layers", o.num_layers},
      {"num_attention_heads", o.num_heads},
      {"num_key_value_heads", o.num_kv_heads},
      {"head_dim", o.head_dim()},
      {"max_position_embeddings", o.max_position},
      {"rope_theta", o.rope_theta},
      {"rope_scaling", nullptr},
      {"rms_norm_eps", o.rms_eps},
      {"tie_word_embeddings", o.tie_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"mlp_bias", false},
      {"pretraining_tp", 1},
      {"initializer_range", 0.02},
      {"use_cache", true},
      {"torch_dtype", "float32"},
      {"bos_token_id", id_or_null(bos_id)},
      {"eos_token_id", id_or_null(eos_id)},
      {"pad_token_id", id_or_null(pad_id)},
  };
}

void save_causal_lm(const Llama& model, const BpeTokenizer& tok, const std::string& dir) {
  const auto& o = model->options();
  if (tok.vocab_size() != o.vocab_size)
    throw ConfigError(located(dir, "the tokenizer has " + std::to_string(tok.vocab_size()) +
                                       " tokens but the model's vocabulary is " + std::to_string(o.vocab_size)));
  // "out/" names the folder "out": the staging folder goes beside it, not inside.
  fs::path target = fs::path(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  const std::string tokenizer_json = tok.to_tokenizer_json();  // may refuse the tokenizer: before any writing
  if (unicode::find_invalid_utf8(tok.chat_template) != std::string::npos)
    throw FormatError(located(dir, "the tokenizer's chat template is not valid UTF-8"));

  StagedDir staged(target);
  write_json_atomic(staged.file(kHfConfigFile), llama_config_json(o, tok.bos_id, tok.eos_id, tok.pad_id));
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model->named_parameters())
    tensors.emplace_back(hf_tensor_name(p.key()), p.value().detach().to(torch::kCPU, torch::kFloat32).contiguous());
  save_safetensors(staged.file(kHfWeightsFile), tensors, {{"format", "pt"}});
  write_file_atomic(staged.file(kHfTokenizerFile), tokenizer_json);

  // What AutoTokenizer needs to build a PreTrainedTokenizerFast from tokenizer.json, and the token
  // ids generate() starts and stops with.
  json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
             {"model_max_length", o.max_position},
             {"clean_up_tokenization_spaces", false},
             {"add_bos_token", false},
             {"add_eos_token", false},
             {"bos_token", token_or_null(tok, tok.bos_id)},
             {"eos_token", token_or_null(tok, tok.eos_id)},
             {"pad_token", token_or_null(tok, tok.pad_id)},
             {"unk_token", nullptr}};
  if (!tok.chat_template.empty()) tc["chat_template"] = tok.chat_template;
  write_json_atomic(staged.file(kHfTokenizerConfigFile), tc);
  write_json_atomic(staged.file(kHfGenerationConfigFile),
                    {{"bos_token_id", id_or_null(tok.bos_id)}, {"eos_token_id", id_or_null(tok.eos_id)},
                     {"pad_token_id", id_or_null(tok.pad_id)}});
  staged.commit();
}

}  // namespace kd
