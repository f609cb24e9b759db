#include "kd/models/bert_text_classifier.h"

#include <filesystem>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

void require_file(const fs::path& dir, const std::string& name, const std::string& hint) {
  if (!fs::exists(dir / name))
    throw IoError(located((dir / name).string(), "missing model file", hint));
}

}  // namespace

BertTextClassifier::BertTextClassifier(BertClassifier model, WordPieceTokenizer tokenizer, LabelVocab labels, int64_t max_length)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), labels_(std::move(labels)), max_length_(max_length) {}

std::unique_ptr<BertTextClassifier> BertTextClassifier::from_pretrained(const BertTextClassifierOptions& o, const LabelVocab& labels) {
  const fs::path dir(o.path);
  if (!fs::is_directory(dir))
    throw IoError(located(o.path, "model folder not found", "run scripts/setup.sh to fetch the pretrained weights"));
  require_file(dir, "config.json", "a Hugging Face checkpoint folder has config.json");
  require_file(dir, "model.safetensors", "only safetensors weights are read");
  if (labels.size() < 2) throw DataError(located(o.path, "a classifier needs at least 2 labels"));
  BertOptions bo = BertOptions::from_config_json((dir / "config.json").string());
  if (o.dropout >= 0) bo.hidden_dropout_prob = bo.attention_probs_dropout_prob = o.dropout;
  if (o.max_length > bo.max_position_embeddings || o.max_length < 3)
    throw ConfigError(located(o.path, "max_length " + std::to_string(o.max_length) + " out of range",
                              "between 3 and " + std::to_string(bo.max_position_embeddings)));
  // The head (and a pooler the checkpoint lacks) keeps the constructor's transformers-style
  // initialisation, drawn from a fixed seed so that it does not depend on earlier random draws.
  torch::manual_seed(0);
  BertClassifier model(bo, labels.size(), o.classifier_dropout);
  load_bert_weights(*model, (dir / "model.safetensors").string(), /*allow_new_head=*/true);
  auto tokenizer = WordPieceTokenizer::from_folder(o.path);
  if (tokenizer.vocab_size() > bo.vocab_size)
    throw FormatError(located(o.path, "tokenizer has more tokens (" + std::to_string(tokenizer.vocab_size()) +
                                          ") than the model's vocab_size (" + std::to_string(bo.vocab_size) + ")"));
  return std::unique_ptr<BertTextClassifier>(new BertTextClassifier(model, std::move(tokenizer), labels, o.max_length));
}

std::unique_ptr<BertTextClassifier> BertTextClassifier::create(const BertOptions& options, WordPieceTokenizer tokenizer,
                                                           LabelVocab labels, int64_t max_length,
                                                           double classifier_dropout) {
  if (max_length < 3 || max_length > options.max_position_embeddings)
    throw ConfigError(located("max_length", std::to_string(max_length) + " out of range",
                              "between 3 and " + std::to_string(options.max_position_embeddings)));
  BertClassifier model(options, labels.size(), classifier_dropout);
  return std::unique_ptr<BertTextClassifier>(
      new BertTextClassifier(model, std::move(tokenizer), std::move(labels), max_length));
}

std::unique_ptr<BertTextClassifier> BertTextClassifier::load(const std::string& path, int64_t max_length) {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) throw IoError(located(path, "model folder not found"));
  require_file(dir, "config.json", "is this a kd or transformers classification checkpoint?");
  require_file(dir, "model.safetensors", "the checkpoint may have been interrupted while saving");
  const auto config = read_json((dir / "config.json").string());
  LabelVocab labels;
  if (fs::exists(dir / "labels.json")) {
    labels = LabelVocab::load((dir / "labels.json").string());
  } else if (config.contains("id2label") && config["id2label"].is_object()) {
    std::vector<std::string> names(config["id2label"].size());
    for (const auto& [k, v] : config["id2label"].items()) {
      const size_t i = std::stoul(k);
      if (i >= names.size() || !v.is_string())
        throw FormatError(located((dir / "config.json").string() + ": id2label", "ids must be 0..n-1"));
      names[i] = v.get<std::string>();
    }
    labels = LabelVocab(names);
  } else {
    throw FormatError(located((dir / "config.json").string(), "no label list",
                              "a classifier folder has labels.json or id2label in config.json"));
  }
  BertOptions bo = BertOptions::from_config_json((dir / "config.json").string());
  double dropout = -1;
  if (config.contains("classifier_dropout") && config["classifier_dropout"].is_number())
    dropout = config["classifier_dropout"].get<double>();
  BertClassifier model(bo, labels.size(), dropout);
  auto missing = load_bert_weights(*model, (dir / "model.safetensors").string(), /*allow_new_head=*/false);
  if (!missing.empty())
    throw FormatError(located((dir / "model.safetensors").string(), "missing tensor '" + missing.front() + "'",
                              "this folder holds an encoder without a classification head"));
  int64_t max_len = max_length;
  if (max_len <= 0 && fs::exists(dir / "kd.json")) {
    const auto info = read_json((dir / "kd.json").string());
    max_len = info.value("max_length", int64_t{128});
  }
  if (max_len <= 0) max_len = std::min<int64_t>(512, bo.max_position_embeddings);
  auto tokenizer = WordPieceTokenizer::from_folder(path);
  return std::unique_ptr<BertTextClassifier>(new BertTextClassifier(model, std::move(tokenizer), std::move(labels), max_len));
}

ModelOutput BertTextClassifier::forward(const Batch& batch, const FeatureRequest& request) {
  return model_->forward(batch.input_ids, batch.token_type_ids, batch.attention_mask, request);
}

void BertTextClassifier::save(const std::string& dir) const {
  const fs::path d(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model_->named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
  save_safetensors((d / "model.safetensors").string(), tensors, {{"format", "pt"}});

  nlohmann::json config = model_->bert->options().to_config_json();
  config["architectures"] = {"BertForSequenceClassification"};
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int64_t i = 0; i < labels_.size(); ++i) {
    id2label[std::to_string(i)] = labels_.name(i);
    label2id[labels_.name(i)] = i;
  }
  config["id2label"] = id2label;
  config["label2id"] = label2id;
  config["problem_type"] = "single_label_classification";
  write_json_atomic((d / "config.json").string(), config);
  labels_.save((d / "labels.json").string());
  tokenizer_.save(dir);
  write_json_atomic((d / "kd.json").string(), {{"type", type()}, {"max_length", max_length_}, {"format_version", 1}});
}

double BertTextClassifier::flops_per_example(double tokens) const {
  const auto& o = model_->bert->options();
  const double T = tokens, H = static_cast<double>(o.hidden_size), I = static_cast<double>(o.intermediate_size);
  const double per_layer = 4 * T * H * H + 2 * T * T * H + 2 * T * H * I;  // multiply-adds
  double macs = static_cast<double>(o.num_hidden_layers) * per_layer;
  if (o.add_pooling_layer) macs += H * H;
  macs += H * static_cast<double>(model_->num_labels());
  return 2 * macs;
}

EncoderShape BertTextClassifier::encoder_shape() const {
  const auto& o = model_->bert->options();
  return {o.num_hidden_layers, o.hidden_size, o.num_attention_heads};
}

torch::Tensor BertTextClassifier::word_embeddings() const {
  return model_->bert->named_parameters(/*recurse=*/true)["embeddings.word_embeddings.weight"];
}

}  // namespace kd
