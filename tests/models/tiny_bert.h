// A tiny randomly initialised BERT classifier over a 40-token vocabulary, and a padded batch for it:
// the teacher and students of the Transformer-student and feature-term tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kd/models/bert_text_classifier.h"

namespace kd::test {

inline std::unique_ptr<BertTextClassifier> tiny_bert(int64_t layers, int64_t hidden, int64_t heads, uint64_t seed,
                                                     std::vector<std::string> labels = {"neg", "pos"}) {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  while (vocab.size() < 40) vocab.push_back("w" + std::to_string(vocab.size()));
  BertOptions o;
  o.vocab_size = 40;
  o.hidden_size = hidden;
  o.num_hidden_layers = layers;
  o.num_attention_heads = heads;
  o.intermediate_size = 2 * hidden;
  o.max_position_embeddings = 24;
  torch::manual_seed(seed);
  return BertTextClassifier::create(o, WordPieceTokenizer(vocab, {}), LabelVocab(std::move(labels)), 20);
}

// Two rows, the second padded: (B, T) = (2, 5).
inline Batch tiny_bert_batch() {
  Batch b;
  b.input_ids = torch::tensor({{2, 7, 9, 11, 3}, {2, 8, 3, 0, 0}}, torch::kInt64);
  b.attention_mask = (b.input_ids != 0).to(torch::kInt64);
  b.token_type_ids = torch::zeros_like(b.input_ids);
  b.labels = torch::tensor({0, 1}, torch::kInt64);
  return b;
}

}  // namespace kd::test
