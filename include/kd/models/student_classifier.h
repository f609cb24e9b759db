// A student model (BiLSTM or TextCNN) as a kd TextClassifier. It reads the teacher's WordPiece ids, so
// it carries a copy of the teacher's tokenizer, label list and max_length, and its folder is complete
// on its own:
//   model.safetensors   the module's parameters (names as named_parameters())
//   kd.json             {"type": "bilstm"|"textcnn", "options": {...}, "max_length": n, "format_version": 1}
//   vocab.txt, tokenizer_config.json, special_tokens_map.json   (WordPieceTokenizer::save)
//   labels.json
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "kd/models/bilstm.h"
#include "kd/models/text_classifier.h"
#include "kd/models/text_cnn.h"

namespace kd {

class StudentClassifier : public TextClassifier {
 public:
  StudentClassifier(const BiLstmOptions& options, WordPieceTokenizer tokenizer, LabelVocab labels,
                    int64_t max_length);
  StudentClassifier(const TextCnnOptions& options, WordPieceTokenizer tokenizer, LabelVocab labels,
                    int64_t max_length);

  // Reads a folder written by save(); the logits are bit for bit those of the saved model.
  // IoError for a missing file, FormatError for malformed contents or an unknown type.
  static std::unique_ptr<StudentClassifier> load(const std::string& dir);

  // logits (B, C); with `features`: "pooled", the sentence vector before the head ((B, 2H) for the
  // BiLSTM, (B, K*F) for the TextCNN), and "embeddings", the (projected) token embeddings (B, T, E).
  ModelOutput forward(const Batch& batch, bool features = false) override;
  torch::nn::Module& module() override { return *module_; }
  const WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return max_length_; }
  std::string type() const override { return type_; }
  void save(const std::string& dir) const override;
  double flops_per_example(double tokens) const override;
  // The embedding table (V, table_dim): the teacher's width when a projection follows it.
  torch::Tensor word_embeddings() const override;

  // Copies `table` (V', D) into the embedding table; D must equal its width and V' >= its rows (extra
  // rows, e.g. a model vocabulary padded past the tokenizer's, are ignored). FormatError otherwise.
  void init_embeddings(const torch::Tensor& table);

  const nlohmann::json& options_json() const { return options_; }
  int64_t parameter_count() const;
  BiLstm bilstm() const { return bilstm_; }    // null unless type() == "bilstm"
  TextCnn text_cnn() const { return cnn_; }    // null unless type() == "textcnn"

 private:
  StudentClassifier(WordPieceTokenizer tokenizer, LabelVocab labels, int64_t max_length);

  BiLstm bilstm_{nullptr};
  TextCnn cnn_{nullptr};
  std::shared_ptr<torch::nn::Module> module_;  // whichever of the two is set
  WordPieceTokenizer tokenizer_;
  LabelVocab labels_;
  int64_t max_length_;
  std::string type_;
  nlohmann::json options_;
};

}  // namespace kd
