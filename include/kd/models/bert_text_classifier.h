// A BERT-family encoder with a classification head as a kd TextClassifier: the teacher, and the
// Transformer student (src/models/bert_student.cpp builds a smaller one). Its checkpoint folder is a
// Hugging Face BertForSequenceClassification folder (config.json with id2label, model.safetensors,
// vocab.txt + tokenizer_config.json) plus kd's labels.json and kd.json, so both kd and transformers
// load it.
#pragma once

#include <memory>
#include <string>

#include "kd/models/bert.h"
#include "kd/models/text_classifier.h"

namespace kd {

struct BertTextClassifierOptions {
  std::string path;                // Hugging Face checkpoint folder (pretrained encoder or fine-tuned)
  int64_t max_length = 128;        // tokens per example after truncation
  double classifier_dropout = -1;  // < 0: the encoder's hidden_dropout_prob
  double dropout = -1;             // >= 0: the encoder's hidden and attention dropout instead of the checkpoint's
};

class BertTextClassifier : public TextClassifier {
 public:
  // A pretrained encoder with a fresh head for `labels` (classifier initialised as in transformers:
  // normal(0, initializer_range) weights, zero bias; the pooler too when the checkpoint has none).
  static std::unique_ptr<BertTextClassifier> from_pretrained(const BertTextClassifierOptions& options, const LabelVocab& labels);
  // A fresh model of the given architecture (weights initialised as transformers does) over the
  // tokenizer and labels of another model, e.g. a Transformer student of a BERT teacher.
  static std::unique_ptr<BertTextClassifier> create(const BertOptions& options, WordPieceTokenizer tokenizer,
                                                    LabelVocab labels, int64_t max_length,
                                                    double classifier_dropout = -1);
  // A fine-tuned kd/transformers classification folder; labels from labels.json or config id2label.
  static std::unique_ptr<BertTextClassifier> load(const std::string& dir, int64_t max_length = 0);

  ModelOutput forward(const Batch& batch, const FeatureRequest& features = {}) override;
  torch::nn::Module& module() override { return *model_; }
  const WordPieceTokenizer& tokenizer() const override { return tokenizer_; }
  const LabelVocab& labels() const override { return labels_; }
  int64_t max_length() const override { return max_length_; }
  std::string type() const override { return "bert"; }
  void save(const std::string& dir) const override;
  // Forward FLOPs of one example of T tokens (hidden H, L layers, intermediate I, C classes), a
  // multiply-add counting 2:  2 * [ L * (4*T*H^2 + 2*T^2*H + 2*T*H*I) + H^2 + H*C ]
  // (Q, K, V and output projections; attention scores and the weighted sum of values; the two FFN
  // matrices; the pooler; the classifier). Embedding lookups, LayerNorm, softmax and GELU are not counted.
  double flops_per_example(double tokens) const override;
  // embeddings.word_embeddings.weight (V, H), shared with the model (not a copy).
  torch::Tensor word_embeddings() const override;
  EncoderShape encoder_shape() const override;

  BertClassifier& model() { return model_; }

 private:
  BertTextClassifier(BertClassifier model, WordPieceTokenizer tokenizer, LabelVocab labels, int64_t max_length);

  BertClassifier model_;
  WordPieceTokenizer tokenizer_;
  LabelVocab labels_;
  int64_t max_length_;
};

}  // namespace kd
