// The interface the trainer, evaluation and (later) distillation use for any text classifier, teacher
// or student: a batch in, a ModelOutput out, and a self-describing checkpoint folder.
#pragma once

#include <torch/torch.h>

#include <string>

#include "kd/data/batch.h"
#include "kd/data/label_vocab.h"
#include "kd/models/model_output.h"
#include "kd/text/wordpiece_tokenizer.h"

namespace kd {

// The layers, width and heads of a Transformer encoder, for the knowledge terms that pair layers and
// heads; all 0 for a model without such layers (BiLSTM, TextCNN).
struct EncoderShape {
  int64_t layers = 0, hidden = 0, heads = 0;
};

class TextClassifier {
 public:
  virtual ~TextClassifier() = default;

  // logits (B, C), and the features `features` asks for (see FeatureRequest).
  virtual ModelOutput forward(const Batch& batch, const FeatureRequest& features = {}) = 0;
  // The trainable module (parameters, train()/eval(), to(device)).
  virtual torch::nn::Module& module() = 0;

  virtual const WordPieceTokenizer& tokenizer() const = 0;
  virtual const LabelVocab& labels() const = 0;
  virtual int64_t max_length() const = 0;  // tokens per example, special tokens included
  virtual std::string type() const = 0;    // registry key, e.g. "bert"

  // Writes the complete model folder into `dir` (an existing, empty staging folder).
  virtual void save(const std::string& dir) const = 0;

  // Floating-point operations (a multiply-add counts 2) of one forward pass over one example of
  // `tokens` tokens, counted analytically from the architecture; 0 when the model does not say.
  virtual double flops_per_example(double tokens) const { (void)tokens; return 0; }
  // The input word-embedding matrix (V, E) over tokenizer() ids, for students that start from it;
  // undefined when the model has none.
  virtual torch::Tensor word_embeddings() const { return {}; }
  virtual EncoderShape encoder_shape() const { return {}; }
};

}  // namespace kd
