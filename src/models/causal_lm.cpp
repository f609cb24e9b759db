// Loading a causal LM and its tokenizer from a GGUF file or a Hugging Face LLaMA folder.
#include "kd/models/causal_lm.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/gguf.h"
#include "kd/io/safetensors.h"
#include "kd/models/causal_lm_folder.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace kd {

namespace {

std::string key_where(const std::string& file, const std::string& key) { return file + ": key '" + key + "'"; }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A config value that may be absent or null (then `fallback`), else of the expected JSON type.
const json* config_value(const json& c, const std::string& file, const std::string& key, bool required) {
  if (!c.contains(key) || c[key].is_null()) {
    if (required) throw FormatError(located(key_where(file, key), "missing", "a LlamaConfig needs it"));
    return nullptr;
  }
  return &c[key];
}

int64_t config_int(const json& c, const std::string& file, const std::string& key, int64_t fallback, bool required) {
  const json* v = config_value(c, file, key, required);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw FormatError(located(key_where(file, key), "is not an integer: " + v->dump()));
  return v->get<int64_t>();
}

double config_number(const json& c, const std::string& file, const std::string& key, double fallback) {
  const json* v = config_value(c, file, key, false);
  if (!v) return fallback;
  if (!v->is_number()) throw FormatError(located(key_where(file, key), "is not a number: " + v->dump()));
  return v->get<double>();
}

bool config_bool(const json& c, const std::string& file, const std::string& key, bool fallback) {
  const json* v = config_value(c, file, key, false);
  if (!v) return fallback;
  if (!v->is_boolean()) throw FormatError(located(key_where(file, key), "is not true or false: " + v->dump()));
  return v->get<bool>();
}

// bos/eos/pad_token_id: an id, a list of ids (the first is used) or null; -1 when absent.
int64_t config_token_id(const json& c, const std::string& file, const std::string& key, int64_t vocab) {
  const json* v = config_value(c, file, key, false);
  if (!v) return -1;
  const json& id = v->is_array() && !v->empty() ? (*v)[0] : *v;
  if (!id.is_number_integer()) throw FormatError(located(key_where(file, key), "is not a token id: " + v->dump()));
  const auto i = id.get<int64_t>();
  if (i < 0 || i >= vocab)
    throw FormatError(located(key_where(file, key), "token id " + std::to_string(i) + " is outside the vocabulary of " +
                                                        std::to_string(vocab)));
  return i;
}

CausalLm load_gguf(const std::string& path) {
  const GgufFile file(path);
  auto tokenizer = BpeTokenizer::from_gguf(file);
  auto model = load_llama_gguf(file);
  if (tokenizer.vocab_size() != model->options().vocab_size)
    throw FormatError(located(key_where(path, "tokenizer.ggml.tokens"),
                              "the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                  " tokens but the model's vocabulary is " + std::to_string(model->options().vocab_size)));
  return {std::move(model), std::move(tokenizer), path};
}

CausalLm load_folder(const fs::path& dir) {
  const std::string config_file = (dir / kHfConfigFile).string(), weights_file = (dir / kHfWeightsFile).string(),
                    tokenizer_file = (dir / kHfTokenizerFile).string();
  const json config = read_json(config_file);
  const auto o = llama_options_from_config(config, config_file);

  const SafeTensorsFile weights(weights_file);
  // Nine tensors a layer: a layer count the file cannot hold is refused before listing them all.
  if (static_cast<uint64_t>(o.num_layers) > weights.names().size() / 9)
    throw FormatError(located(key_where(config_file, "num_hidden_layers"),
                              std::to_string(o.num_layers) + " layers, but " + weights_file + " has only " +
                                  std::to_string(weights.names().size()) + " tensors"));
  const auto shapes = llama_parameter_shapes(o);
  for (const auto& [name, shape] : shapes) {
    const std::string hf = hf_tensor_name(name), where = weights_file + ": tensor '" + hf + "'";
    if (!weights.contains(hf)) throw FormatError(located(where, "missing", "config.json describes a model that has it"));
    const auto& info = weights.info(hf);
    if (info.shape != shape)
      throw FormatError(located(where, "shape " + shape_str(info.shape) + " does not match " + shape_str(shape) +
                                           " from config.json"));
    if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16")
      throw FormatError(located(where, "dtype " + info.dtype + " is not a float type (F32, F16, BF16)"));
  }
  Llama model(o);
  model->eval();
  {
    torch::NoGradGuard no_grad;
    auto params = model->named_parameters();
    for (const auto& [name, shape] : shapes) params[name].copy_(weights.load(hf_tensor_name(name)));
  }

  auto tokenizer = BpeTokenizer::from_tokenizer_json(tokenizer_file);
  if (tokenizer.vocab_size() != o.vocab_size)
    throw FormatError(located(tokenizer_file, "the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                                  " tokens but config.json's vocab_size is " + std::to_string(o.vocab_size)));
  tokenizer.bos_id = config_token_id(config, config_file, "bos_token_id", o.vocab_size);
  tokenizer.eos_id = config_token_id(config, config_file, "eos_token_id", o.vocab_size);
  tokenizer.pad_id = config_token_id(config, config_file, "pad_token_id", o.vocab_size);
  const fs::path tokenizer_config = dir / kHfTokenizerConfigFile;
  if (fs::exists(tokenizer_config)) {
    const json tc = read_json(tokenizer_config.string());
    if (tc.is_object() && tc.contains("chat_template") && tc["chat_template"].is_string())
      tokenizer.chat_template = tc["chat_template"].get<std::string>();
  }
  return {std::move(model), std::move(tokenizer), dir.string()};
}

}  // namespace

std::string hf_tensor_name(const std::string& param) { return param.rfind("lm_head.", 0) == 0 ? param : "model." + param; }

LlamaOptions llama_options_from_config(const json& c, const std::string& file) {
  if (!c.is_object()) throw FormatError(located(file, "not a JSON object"));
  auto refuse = [&](const std::string& key, const std::string& what) { throw FormatError(located(key_where(file, key), what)); };
  if (c.contains("model_type") && c["model_type"] != "llama")
    refuse("model_type", "model type " + c["model_type"].dump() + " is not llama");
  if (c.contains("hidden_act") && c["hidden_act"] != "silu")
    refuse("hidden_act", "activation " + c["hidden_act"].dump() + " is not supported (silu only)");
  for (const char* key : {"attention_bias", "mlp_bias"})
    if (config_bool(c, file, key, false)) refuse(key, "biases are not supported");
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) refuse("rope_scaling", "rope scaling is not supported");

  LlamaOptions o;
  o.vocab_size = config_int(c, file, "vocab_size", 0, true);
  o.hidden_size = config_int(c, file, "hidden_size", 0, true);
  o.intermediate_size = config_int(c, file, "intermediate_size", 0, true);
  o.num_layers = config_int(c, file, "num_hidden_layers", 0, true);
  o.num_heads = config_int(c, file, "num_attention_heads", 0, true);
  // The rest default as transformers' LlamaConfig does.
  o.num_kv_heads = config_int(c, file, "num_key_value_heads", o.num_heads, false);
  o.max_position = config_int(c, file, "max_position_embeddings", 2048, false);
  o.rope_theta = config_number(c, file, "rope_theta", 10000.0);
  o.rms_eps = config_number(c, file, "rms_norm_eps", 1e-6);
  o.tie_embeddings = config_bool(c, file, "tie_word_embeddings", false);
  if (o.num_heads > 0 && config_int(c, file, "head_dim", o.hidden_size / o.num_heads, false) != o.hidden_size / o.num_heads)
    refuse("head_dim", "a head width other than hidden_size / num_attention_heads is not supported");
  try {
    o.validate();
  } catch (const ConfigError& e) {
    throw FormatError(located(file, e.what()));
  }
  return o;
}

CausalLm load_causal_lm(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw IoError(located(path, "no such file or folder"));
  if (fs::is_directory(status)) return load_folder(path);
  return load_gguf(path);
}

bool is_causal_lm_path(const std::string& path) {
  if (fs::path(path).extension() == ".gguf") return true;
  std::ifstream in(fs::path(path) / "config.json");
  if (!in) return false;
  try {
    const auto config = nlohmann::json::parse(in);
    return config.is_object() && config.value("model_type", "") == "llama";
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace kd
