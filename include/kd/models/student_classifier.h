// A student network kd builds from scratch (any StudentNetImpl: BiLSTM, TextCNN) as a kd
// TextClassifier. It reads the teacher's WordPiece ids, so it carries a copy of the teacher's
// tokenizer, label list and max_length, and its folder is complete on its own:
//   model.safetensors   the module's parameters (names as named_parameters())
//   kd.json             {"type": <student kind>, "options": {...}, "max_length": n, "format_version": 1}
//   config.json         for other runtimes: the options' sizes, "model_type": "kd-<kind>", max_length,
//                       id2label, label2id (kd reads kd.json)
//   vocab.txt, tokenizer_config.json, special_tokens_map.json   (WordPieceTokenizer::save)
//   labels.json
// Transformer students are BertTextClassifier folders instead (the Hugging Face layout).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

#include "kd/models/student_net.h"
#include "kd/models/text_classifier.h"

namespace kd {

class StudentClassifier : public TextClassifier {
 public:
  // `type` is the student kind's registry key, written to kd.json so that load_classifier finds its reader.
  StudentClassifier(std::shared_ptr<StudentNetImpl> net, std::string type, WordPieceTokenizer tokenizer,
                    LabelVocab labels, int64_t max_length);

  // Rebuilds a kind's module from kd.json's "options" (`where` names the key for errors).
  using NetFromJson = std::function<std::shared_ptr<StudentNetImpl>(const nlohmann::json& options,
                                                                    const std::string& where)>;
  // Reads a folder written by save(); the logits are bit for bit those of the saved model. IoError for
  // a missing file, FormatError for malformed contents (an options object `net` cannot build, a label
  // count that differs from the options' num_classes).
  static std::unique_ptr<StudentClassifier> load(const std::string& dir, const NetFromJson& net);

  // logits (B, C); with features.hidden: "pooled", the sentence vector before the head ((B, 2H) for the
  // BiLSTM, (B, K*F) for the TextCNN), and "embeddings", the (projected) token embeddings (B, T, E).
  ModelOutput forward(const Batch& batch, const FeatureRequest& features = {}) override;
  torch::nn::Module& module() override { return *net_; }
  const WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return max_length_; }
  std::string type() const override { return type_; }
  void save(const std::string& dir) const override;
  double flops_per_example(double tokens) const override { return net_->flops_per_example(tokens); }
  // The embedding table (V, table_dim): the teacher's width when a projection follows it.
  torch::Tensor word_embeddings() const override { return net_->word_embeddings(); }

  // Copies `table` (V', D) into the embedding table; D must equal its width and V' >= its rows (extra
  // rows, e.g. a model vocabulary padded past the tokenizer's, are ignored). FormatError otherwise.
  void init_embeddings(const torch::Tensor& table);

  nlohmann::json options_json() const { return net_->options_json(); }
  int64_t parameter_count() const;
  // The network, for kind-specific inspection: std::dynamic_pointer_cast<BiLstmImpl>(student.net()).
  const std::shared_ptr<StudentNetImpl>& net() const { return net_; }

 private:
  std::shared_ptr<StudentNetImpl> net_;
  std::string type_;
  WordPieceTokenizer tokenizer_;
  LabelVocab labels_;
  int64_t max_length_;
};

}  // namespace kd
