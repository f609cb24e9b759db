#include "kd/models/bert.h"

#include <set>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "kd/models/bert_layers.h"

namespace kd {

namespace {

// Typed access to one config.json object; every complaint names the file and the key.
class ConfigReader {
 public:
  ConfigReader(const std::string& path, const nlohmann::json& j) : path_(path), j_(j) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what, const std::string& hint = "") const {
    throw FormatError(located(path_ + ":" + key, what, hint));
  }
  const nlohmann::json* find(const std::string& key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  void integer(const std::string& key, int64_t& out, int64_t min_value) const {
    const auto* v = find(key);
    if (!v) return;
    if (!v->is_number_integer()) fail(key, "expected an integer, got " + v->dump());
    const int64_t x = v->get<int64_t>();
    if (x < min_value) fail(key, "must be at least " + std::to_string(min_value) + ", got " + std::to_string(x));
    out = x;
  }
  void number(const std::string& key, double& out, double lo, double hi, bool hi_inclusive) const {
    const auto* v = find(key);
    if (!v) return;
    if (!v->is_number()) fail(key, "expected a number, got " + v->dump());
    const double x = v->get<double>();
    if (!(x >= lo && (hi_inclusive ? x <= hi : x < hi))) {
      fail(key, "out of range: " + v->dump(),
           "expected " + std::to_string(lo) + " <= value " + (hi_inclusive ? "<= " : "< ") + std::to_string(hi));
    }
    out = x;
  }
  void string(const std::string& key, std::string& out) const {
    const auto* v = find(key);
    if (!v) return;
    if (!v->is_string()) fail(key, "expected a string, got " + v->dump());
    out = v->get<std::string>();
  }
  void boolean(const std::string& key, bool& out) const {
    const auto* v = find(key);
    if (!v) return;
    if (!v->is_boolean()) fail(key, "expected true or false, got " + v->dump());
    out = v->get<bool>();
  }

 private:
  const std::string& path_;
  const nlohmann::json& j_;
};

// Options built in code skip from_config_json's checks; bad ones would otherwise fail deep inside
// LibTorch with a message that names neither the option nor the value.
void check_options(const BertOptions& o) {
  auto bad = [](const std::string& key, const std::string& what) {
    throw ConfigError(located("BertOptions." + key, what));
  };
  if (o.vocab_size < 1) bad("vocab_size", "must be positive");
  if (o.hidden_size < 1) bad("hidden_size", "must be positive");
  if (o.num_hidden_layers < 0) bad("num_hidden_layers", "must not be negative");
  if (o.num_attention_heads < 1 || o.hidden_size % o.num_attention_heads != 0) {
    bad("num_attention_heads", "must divide hidden_size (" + std::to_string(o.hidden_size) + ")");
  }
  if (o.intermediate_size < 1) bad("intermediate_size", "must be positive");
  if (!bert_activation_known(o.hidden_act)) bad("hidden_act", "unsupported activation '" + o.hidden_act + "'");
  if (o.max_position_embeddings < 1) bad("max_position_embeddings", "must be positive");
  if (o.type_vocab_size < 1) bad("type_vocab_size", "must be positive");
  if (o.pad_token_id >= o.vocab_size) bad("pad_token_id", "must be below vocab_size");
  if (!(o.hidden_dropout_prob >= 0 && o.hidden_dropout_prob < 1)) bad("hidden_dropout_prob", "must be in [0, 1)");
  if (!(o.attention_probs_dropout_prob >= 0 && o.attention_probs_dropout_prob < 1)) {
    bad("attention_probs_dropout_prob", "must be in [0, 1)");
  }
  if (!(o.layer_norm_eps > 0)) bad("layer_norm_eps", "must be positive");
}

// Hugging Face's BertPreTrainedModel._init_weights, so that a freshly built student or head starts
// from the same distribution as one built in Python.
// Runs from constructors, where shared_from_this is not yet available: the root itself is skipped,
// so it must not hold parameters of its own.
void init_weights(torch::nn::Module& root, double std) {
  torch::NoGradGuard no_grad;
  for (auto& m : root.modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      lin->weight.normal_(0.0, std);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<torch::nn::Embedding>()) {
      emb->weight.normal_(0.0, std);
      if (auto pad = emb->options.padding_idx()) emb->weight[*pad].zero_();
    } else if (auto* ln = m->as<torch::nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Names under which a module parameter may be stored: as is, with or without the "bert." prefix
// (BertModel vs. task-head checkpoints), and the pre-2019 LayerNorm gamma/beta spelling.
std::vector<std::string> candidate_names(const std::string& name) {
  std::vector<std::string> bases{name};
  const std::string prefix = "bert.";
  bases.push_back(starts_with(name, prefix) ? name.substr(prefix.size()) : prefix + name);
  std::vector<std::string> out = bases;
  for (const auto& b : bases) {
    if (b.find("LayerNorm.") == std::string::npos) continue;
    if (ends_with(b, ".weight")) out.push_back(b.substr(0, b.size() - 7) + ".gamma");
    if (ends_with(b, ".bias")) out.push_back(b.substr(0, b.size() - 5) + ".beta");
  }
  return out;
}

// The pooler and a classifier may be absent from an encoder-only checkpoint; nothing else may.
bool is_head_parameter(const std::string& name) {
  return starts_with(name, "pooler.") || starts_with(name, "bert.pooler.") || starts_with(name, "classifier.");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

BertOptions BertOptions::from_config_json(const std::string& path) {
  const nlohmann::json j = read_json(path);
  if (!j.is_object()) throw FormatError(located(path, "expected a JSON object", "a Hugging Face config.json"));
  ConfigReader r(path, j);
  BertOptions o;

  std::string s;
  r.string("model_type", s);
  if (!s.empty() && s != "bert") {
    r.fail("model_type", "unsupported model type '" + s + "'", "only BERT checkpoints (model_type \"bert\") load");
  }
  r.integer("vocab_size", o.vocab_size, 1);
  r.integer("hidden_size", o.hidden_size, 1);
  r.integer("num_hidden_layers", o.num_hidden_layers, 0);
  r.integer("num_attention_heads", o.num_attention_heads, 1);
  if (o.hidden_size % o.num_attention_heads != 0) {
    r.fail("num_attention_heads", "does not divide hidden_size " + std::to_string(o.hidden_size));
  }
  r.integer("intermediate_size", o.intermediate_size, 1);
  r.string("hidden_act", o.hidden_act);
  if (!bert_activation_known(o.hidden_act)) {
    r.fail("hidden_act", "unsupported activation '" + o.hidden_act + "'", "gelu, gelu_new, gelu_pytorch_tanh or relu");
  }
  r.number("hidden_dropout_prob", o.hidden_dropout_prob, 0.0, 1.0, false);
  r.number("attention_probs_dropout_prob", o.attention_probs_dropout_prob, 0.0, 1.0, false);
  r.integer("max_position_embeddings", o.max_position_embeddings, 1);
  r.integer("type_vocab_size", o.type_vocab_size, 1);
  r.number("layer_norm_eps", o.layer_norm_eps, 0.0, 1.0, true);
  if (!(o.layer_norm_eps > 0)) r.fail("layer_norm_eps", "must be positive");
  if (const auto* pad = r.find("pad_token_id"); pad && pad->is_null()) {
    o.pad_token_id = -1;
  } else {
    r.integer("pad_token_id", o.pad_token_id, 0);
    if (o.pad_token_id >= o.vocab_size) r.fail("pad_token_id", "must be below vocab_size");
  }
  r.number("initializer_range", o.initializer_range, 0.0, 1.0, true);
  r.boolean("add_pooling_layer", o.add_pooling_layer);

  // Settings that change the computation in ways this encoder does not implement.
  s = "absolute";
  r.string("position_embedding_type", s);
  if (s != "absolute") {
    r.fail("position_embedding_type", "unsupported value '" + s + "'", "only \"absolute\" positions are implemented");
  }
  for (const char* key : {"is_decoder", "add_cross_attention"}) {
    bool flag = false;
    r.boolean(key, flag);
    if (flag) r.fail(key, "must be false", "only the bidirectional encoder is implemented");
  }
  return o;
}

nlohmann::json BertOptions::to_config_json() const {
  nlohmann::json j;
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id >= 0 ? nlohmann::json(pad_token_id) : nlohmann::json(nullptr);
  j["position_embedding_type"] = "absolute";
  // Hugging Face takes this as a constructor argument, not a config field; an extra key is harmless.
  if (!add_pooling_layer) j["add_pooling_layer"] = false;
  return j;
}

// ---------------------------------------------------------------------------------------------------

BertModelImpl::BertModelImpl(const BertOptions& options) : options_(options) {
  check_options(options_);
  embeddings_ = register_module("embeddings", std::make_shared<BertEmbeddingsImpl>(options_));
  encoder_ = register_module("encoder", std::make_shared<BertEncoderImpl>(options_));
  if (options_.add_pooling_layer) pooler_ = register_module("pooler", std::make_shared<BertPoolerImpl>(options_));
  init_weights(*this, options_.initializer_range);
}

ModelOutput BertModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                                   const torch::Tensor& attention_mask, const FeatureRequest& request,
                                   bool pooled_only) {
  TORCH_CHECK(!(pooled_only && request.any()), "BertModel: pooled_only returns no per-layer features");
  TORCH_CHECK(!(pooled_only && !pooler_), "BertModel: pooled_only needs the pooling layer");
  TORCH_CHECK(input_ids.dim() == 2, "BertModel: input_ids must be (B, T), got ", input_ids.sizes());
  TORCH_CHECK(!token_type_ids.defined() || token_type_ids.sizes() == input_ids.sizes(),
              "BertModel: token_type_ids ", token_type_ids.sizes(), " must match input_ids ", input_ids.sizes());
  TORCH_CHECK(!attention_mask.defined() || attention_mask.sizes() == input_ids.sizes(),
              "BertModel: attention_mask ", attention_mask.sizes(), " must match input_ids ", input_ids.sizes());
  if (input_ids.size(1) > options_.max_position_embeddings) {
    throw ConfigError(located("BertModel", "sequence length " + std::to_string(input_ids.size(1)) +
                                               " exceeds max_position_embeddings " +
                                               std::to_string(options_.max_position_embeddings),
                              "lower the tokenizer's max_length"));
  }

  ModelOutput out;
  torch::Tensor h = embeddings_->forward(input_ids, token_type_ids);  // (B, T, H)
  if (request.hidden) out.features["hidden.0"] = h;
  // One bias for all layers, in the activations' dtype (so a half-precision model gets half's lowest).
  const torch::Tensor mask_bias = bert_additive_mask(attention_mask, h.scalar_type());  // (B, 1, 1, T)
  auto& layers = encoder_->layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    BertLayerFeatures f;
    f.want_probs = request.attention;
    f.want_scores = request.attention_scores;
    f.want_qkv = request.qkv;
    const bool last = i + 1 == layers.size();
    h = layers[i]->forward(h, mask_bias, &f, pooled_only && last);  // (B, T, H); the pooled_only last: (B, 1, H)
    const std::string idx = std::to_string(i + 1);
    if (request.hidden) out.features["hidden." + idx] = h;
    if (request.attention) out.features["attn." + idx] = std::move(f.probs);                // (B, heads, T, T)
    if (request.attention_scores) out.features["attn_scores." + idx] = std::move(f.scores);  // (B, heads, T, T)
    if (request.qkv) {
      out.features["query." + idx] = std::move(f.query);  // (B, T, H)
      out.features["key." + idx] = std::move(f.key);
      out.features["value." + idx] = std::move(f.value);
    }
  }
  if (pooler_) out.features["pooled"] = pooler_->forward(h);  // (B, H)
  if (!pooled_only) out.features["last_hidden"] = std::move(h);
  return out;
}

// ---------------------------------------------------------------------------------------------------

BertClassifierImpl::BertClassifierImpl(const BertOptions& options, int64_t num_labels, double classifier_dropout)
    : num_labels_(num_labels) {
  if (!options.add_pooling_layer) {
    throw ConfigError(located("BertOptions.add_pooling_layer", "a classifier reads the pooler output",
                              "leave add_pooling_layer true"));
  }
  if (num_labels < 1) throw ConfigError(located("num_labels", "must be positive, got " + std::to_string(num_labels)));
  // Hugging Face: config.classifier_dropout if set, otherwise hidden_dropout_prob.
  const double p = classifier_dropout >= 0 ? classifier_dropout : options.hidden_dropout_prob;
  if (!(p < 1)) throw ConfigError(located("classifier_dropout", "must be in [0, 1)"));
  bert = register_module("bert", BertModel(options));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  classifier = register_module("classifier", DynamicLinear(options.hidden_size, num_labels));
  torch::NoGradGuard no_grad;
  classifier->weight.normal_(0.0, options.initializer_range);
  classifier->bias.zero_();
}

ModelOutput BertClassifierImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                                        const torch::Tensor& attention_mask, const FeatureRequest& request) {
  ModelOutput out = bert->forward(input_ids, token_type_ids, attention_mask, request,
                                  /*pooled_only=*/!is_training() && !request.any());
  out.logits = classifier(dropout(out.features.at("pooled")));  // (B, C)
  return out;
}

// ---------------------------------------------------------------------------------------------------

std::vector<std::string> load_bert_weights(torch::nn::Module& module, const std::string& safetensors_path,
                                           bool allow_new_head) {
  SafeTensorsFile file(safetensors_path);
  std::vector<std::string> missing;
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    std::string stored;
    for (const auto& c : candidate_names(name)) {
      if (file.contains(c)) {
        stored = c;
        break;
      }
    }
    if (stored.empty()) {
      if (allow_new_head && is_head_parameter(name)) {
        missing.push_back(name);
        continue;
      }
      throw FormatError(located(safetensors_path, "tensor '" + name + "' is missing",
                                is_head_parameter(name) ? "a checkpoint without this head needs allow_new_head"
                                                        : "is this a BERT checkpoint with the same architecture?"));
    }
    const TensorInfo& info = file.info(stored);
    if (!file.holds_float(stored)) {
      throw FormatError(located(safetensors_path, "tensor '" + stored + "' has dtype " + info.dtype,
                                "expected a floating-point parameter"));
    }
    if (at::IntArrayRef(info.shape) != param.sizes()) {
      throw FormatError(located(safetensors_path,
                                "tensor '" + stored + "' has shape " + shape_str(info.shape) + ", the model expects " +
                                    shape_str(param.sizes()),
                                "does config.json match the weights?"));
    }
    param.copy_(file.load(stored, param.scalar_type()));
  }
  return missing;
}

}  // namespace kd
