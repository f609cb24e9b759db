#include "kd/models/student_classifier.h"

#include <filesystem>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/train/trainer.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

constexpr int kFormatVersion = 1;

void require_file(const fs::path& dir, const std::string& name) {
  if (!fs::exists(dir / name))
    throw IoError(located((dir / name).string(), "missing student model file",
                          "a student folder has model.safetensors, kd.json, vocab.txt and labels.json"));
}

}  // namespace

StudentClassifier::StudentClassifier(std::shared_ptr<StudentNetImpl> net, std::string type, WordPieceTokenizer tokenizer,
                                     LabelVocab labels, int64_t max_length)
    : net_(std::move(net)),
      type_(std::move(type)),
      tokenizer_(std::move(tokenizer)),
      labels_(std::move(labels)),
      max_length_(max_length) {}

std::unique_ptr<StudentClassifier> StudentClassifier::load(const std::string& path, const NetFromJson& make_net) {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) throw IoError(located(path, "model folder not found"));
  for (const char* name : {"kd.json", "model.safetensors", "labels.json", "vocab.txt"}) require_file(dir, name);
  const std::string info_path = (dir / "kd.json").string();
  const auto info = read_json(info_path);
  if (!info.is_object() || !info.contains("type") || !info["type"].is_string() || !info.contains("options"))
    throw FormatError(located(info_path, "expected {\"type\": ..., \"options\": {...}, \"max_length\": n}"));
  const int64_t version = info.value("format_version", int64_t{1});
  if (version != kFormatVersion)
    throw FormatError(located(info_path, "format_version " + std::to_string(version) + " is not supported",
                              "this kd reads version " + std::to_string(kFormatVersion)));
  int64_t max_length = 0;
  if (info.contains("max_length") && info["max_length"].is_number_integer()) max_length = info["max_length"].get<int64_t>();
  if (max_length < 1) throw FormatError(located(info_path + ": max_length", "must be a positive integer"));
  auto tokenizer = WordPieceTokenizer::from_folder(path);
  auto labels = LabelVocab::load((dir / "labels.json").string());
  auto net = make_net(info["options"], info_path + ": options");
  const int64_t classes = net->options_json().value("num_classes", int64_t{0});
  if (classes != labels.size())
    throw FormatError(located(info_path, "num_classes " + std::to_string(classes) + " but labels.json lists " +
                                             std::to_string(labels.size()) + " labels"));
  auto model = std::make_unique<StudentClassifier>(std::move(net), info["type"].get<std::string>(),
                                                   std::move(tokenizer), std::move(labels), max_length);
  load_module_state(*model->net_, (dir / "model.safetensors").string());
  return model;
}

ModelOutput StudentClassifier::forward(const Batch& batch, const FeatureRequest& request) {
  ModelOutput out;
  torch::Tensor pooled;
  out.logits = net_->forward(batch.input_ids, batch.attention_mask, request.hidden ? &pooled : nullptr);  // (B, C)
  if (request.hidden) {
    out.features["pooled"] = pooled;
    out.features["embeddings"] = net_->embed(batch.input_ids);  // (B, T, E)
  }
  return out;
}

void StudentClassifier::save(const std::string& dir) const {
  const fs::path d(dir);
  save_module_state(*net_, (d / "model.safetensors").string());
  labels_.save((d / "labels.json").string());
  tokenizer_.save(dir);
  // config.json: the same architecture in the shape other runtimes look for (model_type, the sizes,
  // id2label/label2id, the tokenizer); kd itself reads kd.json.
  nlohmann::json config = net_->options_json();
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int64_t i = 0; i < labels_.size(); ++i) {
    id2label[std::to_string(i)] = labels_.name(i);
    label2id[labels_.name(i)] = i;
  }
  config["model_type"] = "kd-" + type_;
  config["architectures"] = {type_};
  config["max_length"] = max_length_;
  config["id2label"] = id2label;
  config["label2id"] = label2id;
  config["torch_dtype"] = "float32";
  config["tokenizer_class"] = "BertTokenizer";
  config["weights"] = "model.safetensors: PyTorch parameter names (see the README, \"BiLSTM and TextCNN students outside kd\")";
  write_json_atomic((d / "config.json").string(), config);
  write_json_atomic((d / "kd.json").string(), {{"type", type_},
                                               {"options", net_->options_json()},
                                               {"max_length", max_length_},
                                               {"format_version", kFormatVersion}});
}

void StudentClassifier::init_embeddings(const torch::Tensor& table) {
  auto weight = word_embeddings();  // (V, D)
  if (!table.defined() || table.dim() != 2 || table.size(1) != weight.size(1) || table.size(0) < weight.size(0))
    throw FormatError(located("student embeddings",
                              "cannot start from a table of shape " +
                                  (table.defined() ? c10::str(table.sizes()) : std::string("(none)")),
                              "need at least " + std::to_string(weight.size(0)) + " rows of width " +
                                  std::to_string(weight.size(1))));
  torch::NoGradGuard no_grad;
  weight.copy_(table.slice(0, 0, weight.size(0)).to(weight.device(), weight.scalar_type()));
}

int64_t StudentClassifier::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : net_->parameters()) n += p.numel();
  return n;
}

}  // namespace kd
