// A causal LM written as a llama.cpp GGUF file (see kd/models/causal_lm_gguf.h).
#include "kd/models/causal_lm_gguf.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/gguf_writer.h"
#include "kd/models/causal_lm_folder.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

constexpr const char* kExportable =
    "kd export writes LLaMA-family causal LMs: a Hugging Face LLaMA folder (config.json with model_type llama, "
    "model.safetensors, tokenizer.json) such as kd distill-lm writes, or a GGUF file";

// llama.cpp's LLAMA_FTYPE_* for a file whose matrices are all of `type`.
uint32_t file_type(GgmlType type) {
  switch (type) {
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q8_0: return 7;
    default: return 0;
  }
}

const char* pre_tokenizer_name(BpePreTokenizer pre) { return pre == BpePreTokenizer::SmolLM ? "smollm" : "gpt2"; }

void add_tokenizer(GgufWriter& w, const BpeTokenizer& tok) {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  for (int64_t id = 0; id < tok.vocab_size(); ++id) {
    tokens.push_back(tok.token(id));
    types.push_back(static_cast<int64_t>(tok.token_type(id)));
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre_tokenizer_name(tok.pre_tokenizer()));
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_ints("tokenizer.ggml.token_type", GgufValueType::Int32, types);
  w.add_strings("tokenizer.ggml.merges", tok.merges());
  // kd and the folder's tokenizer_config.json add no BOS; llama.cpp would add one unless told not to.
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_bool("tokenizer.ggml.add_space_prefix", false);
  const std::pair<const char*, int64_t> ids[] = {{"tokenizer.ggml.bos_token_id", tok.bos_id},
                                                 {"tokenizer.ggml.eos_token_id", tok.eos_id},
                                                 {"tokenizer.ggml.padding_token_id", tok.pad_id}};
  for (const auto& [key, id] : ids)
    if (id >= 0) w.add_uint32(key, static_cast<uint32_t>(id));
  if (!tok.chat_template.empty()) w.add_string("tokenizer.chat_template", tok.chat_template);
}

// What `dir` holds when it is a model folder of another kind ("" when it may be a LLaMA folder).
std::string other_model_kind(const fs::path& dir) {
  if (fs::exists(dir / "kd.json")) {
    const auto meta = read_json((dir / "kd.json").string());
    const std::string type = meta.is_object() && meta.contains("type") && meta["type"].is_string() ? meta["type"].get<std::string>() : "?";
    return "a kd text classifier of type '" + type + "'";
  }
  if (!fs::exists(dir / kHfConfigFile)) return std::string("no ") + kHfConfigFile;
  const auto config = read_json((dir / kHfConfigFile).string());
  if (config.is_object() && config.contains("model_type") && config["model_type"] != "llama")
    return "a model of type " + config["model_type"].dump();
  return "";
}

}  // namespace

const std::vector<std::string>& gguf_export_type_names() {
  static const std::vector<std::string> names = {"f32", "f16", "q8_0", "q4_0"};
  return names;
}

GgmlType parse_gguf_export_type(const std::string& name) {
  static const GgmlType types[] = {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0};
  const auto& names = gguf_export_type_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (name == names[i]) return types[i];
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(located("--type " + name, "unknown GGUF tensor type", "known: " + known));
}

void save_causal_lm_gguf(const CausalLm& lm, const std::string& path, GgmlType type, const std::string& name) {
  const auto& o = lm.model->options();
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.type", "model");
  w.add_string("general.name", name);
  w.add_uint32("general.file_type", file_type(type));
  w.add_uint32("general.quantization_version", 2);
  w.add_uint32("llama.block_count", static_cast<uint32_t>(o.num_layers));
  w.add_uint32("llama.context_length", static_cast<uint32_t>(o.max_position));
  w.add_uint32("llama.embedding_length", static_cast<uint32_t>(o.hidden_size));
  w.add_uint32("llama.feed_forward_length", static_cast<uint32_t>(o.intermediate_size));
  w.add_uint32("llama.attention.head_count", static_cast<uint32_t>(o.num_heads));
  w.add_uint32("llama.attention.head_count_kv", static_cast<uint32_t>(o.num_kv_heads));
  w.add_uint32("llama.rope.dimension_count", static_cast<uint32_t>(o.head_dim()));
  w.add_uint32("llama.vocab_size", static_cast<uint32_t>(o.vocab_size));
  w.add_float32("llama.rope.freq_base", static_cast<float>(o.rope_theta));
  w.add_float32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(o.rms_eps));
  add_tokenizer(w, lm.tokenizer);

  torch::NoGradGuard no_grad;
  for (const auto& p : lm.model->named_parameters()) {
    const auto [gg, rope_heads] = llama_gguf_name(p.key(), o);
    auto t = p.value().detach().to(torch::kCPU, torch::kFloat32);
    if (!torch::isfinite(t).all().item<bool>())
      throw FormatError(located(lm.source + ": tensor '" + hf_tensor_name(p.key()) + "'", "holds NaN or infinite values"));
    if (rope_heads) t = permute_rope_rows(t, rope_heads);
    const bool blocks_fit = t.dim() == 2 && t.size(1) % ggml_block_size(type) == 0;
    w.add_tensor(gg, t, blocks_fit ? type : GgmlType::F32);
  }
  w.write(path);
}

void export_causal_lm_gguf(const std::string& model, const std::string& path, GgmlType type) {
  const fs::path out(path);
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (!fs::is_directory(parent))
    throw IoError(located(path, "the folder " + parent.string() + " does not exist", "create it first"));
  if (fs::is_directory(out)) throw IoError(located(path, "is a folder", "name the .gguf file to write"));
  fs::path source = fs::path(model).lexically_normal();
  if (source.filename().empty()) source = source.parent_path();  // "dir/" names "dir"
  if (fs::is_directory(source)) {
    const auto kind = other_model_kind(source);
    if (!kind.empty()) throw ConfigError(located(model, "not a causal LM folder: it holds " + kind, kExportable));
  }
  const auto lm = load_causal_lm(model);
  save_causal_lm_gguf(lm, path, type, fs::is_directory(source) ? source.filename().string() : source.stem().string());
}

}  // namespace kd
