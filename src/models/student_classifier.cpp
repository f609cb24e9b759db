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

StudentClassifier::StudentClassifier(WordPieceTokenizer tokenizer, LabelVocab labels, int64_t max_length)
    : tokenizer_(std::move(tokenizer)), labels_(std::move(labels)), max_length_(max_length) {}

StudentClassifier::StudentClassifier(const BiLstmOptions& options, WordPieceTokenizer tokenizer, LabelVocab labels,
                                     int64_t max_length)
    : StudentClassifier(std::move(tokenizer), std::move(labels), max_length) {
  bilstm_ = BiLstm(options);
  module_ = bilstm_.ptr();
  type_ = "bilstm";
  options_ = options.to_json();
}

StudentClassifier::StudentClassifier(const TextCnnOptions& options, WordPieceTokenizer tokenizer, LabelVocab labels,
                                     int64_t max_length)
    : StudentClassifier(std::move(tokenizer), std::move(labels), max_length) {
  cnn_ = TextCnn(options);
  module_ = cnn_.ptr();
  type_ = "textcnn";
  options_ = options.to_json();
}

std::unique_ptr<StudentClassifier> StudentClassifier::load(const std::string& path) {
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
  const auto type = info["type"].get<std::string>();
  int64_t max_length = 0;
  if (info.contains("max_length") && info["max_length"].is_number_integer()) max_length = info["max_length"].get<int64_t>();
  if (max_length < 1) throw FormatError(located(info_path + ": max_length", "must be a positive integer"));
  auto tokenizer = WordPieceTokenizer::from_folder(path);
  auto labels = LabelVocab::load((dir / "labels.json").string());
  const std::string where = info_path + ": options";
  std::unique_ptr<StudentClassifier> model;
  if (type == "bilstm") {
    model.reset(new StudentClassifier(BiLstmOptions::from_json(info["options"], where), std::move(tokenizer),
                                      std::move(labels), max_length));
  } else if (type == "textcnn") {
    model.reset(new StudentClassifier(TextCnnOptions::from_json(info["options"], where), std::move(tokenizer),
                                      std::move(labels), max_length));
  } else {
    throw FormatError(located(info_path + ": type", "unknown student type '" + type + "'", "known types: bilstm, textcnn"));
  }
  const int64_t classes = model->options_.value("num_classes", int64_t{0});
  if (classes != model->labels_.size())
    throw FormatError(located(info_path, "num_classes " + std::to_string(classes) + " but labels.json lists " +
                                             std::to_string(model->labels_.size()) + " labels"));
  load_module_state(*model->module_, (dir / "model.safetensors").string());
  return model;
}

ModelOutput StudentClassifier::forward(const Batch& batch, bool features) {
  ModelOutput out;
  torch::Tensor pooled;
  torch::Tensor* want = features ? &pooled : nullptr;
  if (bilstm_) {
    out.logits = bilstm_->forward(batch.input_ids, batch.attention_mask, want);
    if (features) out.features["embeddings"] = bilstm_->embed(batch.input_ids);
  } else {
    out.logits = cnn_->forward(batch.input_ids, batch.attention_mask, want);
    if (features) out.features["embeddings"] = cnn_->embed(batch.input_ids);
  }
  if (features) out.features["pooled"] = pooled;
  return out;
}

void StudentClassifier::save(const std::string& dir) const {
  const fs::path d(dir);
  save_module_state(*module_, (d / "model.safetensors").string());
  labels_.save((d / "labels.json").string());
  tokenizer_.save(dir);
  write_json_atomic((d / "kd.json").string(), {{"type", type_},
                                               {"options", options_},
                                               {"max_length", max_length_},
                                               {"format_version", kFormatVersion}});
}

double StudentClassifier::flops_per_example(double tokens) const {
  return bilstm_ ? bilstm_flops(bilstm_->options(), tokens) : text_cnn_flops(cnn_->options(), tokens);
}

torch::Tensor StudentClassifier::word_embeddings() const {
  return bilstm_ ? bilstm_->embedding->weight : cnn_->embedding->weight;
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
  for (const auto& p : module_->parameters()) n += p.numel();
  return n;
}

}  // namespace kd
