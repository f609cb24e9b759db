// INTERIM implementation of kd/models/causal_lm.h until the full one (HF folders with tokenizer.json
// written by kd itself) lands: GGUF files load with their tokenizer; folders are written as
// config.json (LlamaConfig keys) + model.safetensors (float32, Hugging Face names), and the tokenizer
// is recorded as the path of the GGUF file (or tokenizer.json) it came from, key "kd_tokenizer_source".
#include <filesystem>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/gguf.h"
#include "kd/io/safetensors.h"
#include "kd/models/causal_lm_interim.h"

namespace fs = std::filesystem;

namespace kd {

CausalLm load_causal_lm(const std::string& path) {
  if (fs::is_regular_file(path)) {
    GgufFile f(path);
    return {load_llama_gguf(f), BpeTokenizer::from_gguf(f), path};
  }
  const fs::path dir(path);
  if (!fs::is_directory(dir)) throw IoError(located(path, "no such model file or folder"));
  const auto cfg = read_json((dir / "config.json").string());
  auto get = [&](const char* key) {
    if (!cfg.contains(key)) throw FormatError(located((dir / "config.json").string(), std::string("missing key '") + key + "'"));
    return cfg.at(key);
  };
  LlamaOptions o;
  o.vocab_size = get("vocab_size").get<int64_t>();
  o.hidden_size = get("hidden_size").get<int64_t>();
  o.intermediate_size = get("intermediate_size").get<int64_t>();
  o.num_layers = get("num_hidden_layers").get<int64_t>();
  o.num_heads = get("num_attention_heads").get<int64_t>();
  o.num_kv_heads = get("num_key_value_heads").get<int64_t>();
  o.max_position = get("max_position_embeddings").get<int64_t>();
  o.rope_theta = get("rope_theta").get<double>();
  o.rms_eps = get("rms_norm_eps").get<double>();
  o.tie_embeddings = get("tie_word_embeddings").get<bool>();
  Llama model(o);
  model->eval();
  SafeTensorsFile st((dir / "model.safetensors").string());
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    const std::string name = p.key() == "lm_head.weight" ? p.key() : "model." + p.key();
    const auto t = st.load(name);
    if (t.sizes() != p.value().sizes())
      throw FormatError(located(st.path(), "tensor '" + name + "' has another shape than config.json implies"));
    p.value().copy_(t);
  }
  std::string tok = (dir / "tokenizer.json").string();
  BpeTokenizer tokenizer = fs::exists(tok) ? BpeTokenizer::from_tokenizer_json(tok)
                                           : BpeTokenizer::from_gguf(get("kd_tokenizer_source").get<std::string>());
  return {model, tokenizer, path};
}


// Used by the LM distillation until save_causal_lm writes tokenizer.json itself.
void save_causal_lm_interim(const Llama& model, const BpeTokenizer& tokenizer, const std::string& tokenizer_source,
                            const std::string& dir) {
  const auto& o = model->options();
  StagedDir staged{fs::path(dir)};
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model->named_parameters())
    tensors.emplace_back(p.key() == "lm_head.weight" ? p.key() : "model." + p.key(), p.value().detach());
  save_safetensors(staged.file("model.safetensors"), tensors, {{"format", "pt"}});
  nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"vocab_size", o.vocab_size},
                        {"hidden_size", o.hidden_size},
                        {"intermediate_size", o.intermediate_size},
                        {"num_hidden_layers", o.num_layers},
                        {"num_attention_heads", o.num_heads},
                        {"num_key_value_heads", o.num_kv_heads},
                        {"max_position_embeddings", o.max_position},
                        {"rope_theta", o.rope_theta},
                        {"rms_norm_eps", o.rms_eps},
                        {"tie_word_embeddings", o.tie_embeddings},
                        {"hidden_act", "silu"},
                        {"torch_dtype", "float32"},
                        {"bos_token_id", tokenizer.bos_id},
                        {"eos_token_id", tokenizer.eos_id},
                        {"kd_tokenizer_source", fs::absolute(tokenizer_source).string()}};
  write_json_atomic(staged.file("config.json"), cfg);
  staged.commit();
}

}  // namespace kd
