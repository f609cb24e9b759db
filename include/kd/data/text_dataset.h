// Tokenized classification examples, ready to be batched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kd/data/label_vocab.h"
#include "kd/data/table_reader.h"
#include "kd/text/wordpiece_tokenizer.h"

namespace kd {

struct TextExample {
  Encoding encoding;  // [CLS] ... [SEP], truncated to max_length
  int64_t label = -1; // class id, -1 = unlabelled
  int64_t row = 0;    // row index in the source file
};

class TextDataset {
 public:
  // Tokenizes every row. Labels are mapped through `labels` (DataError naming file:line if unknown).
  TextDataset(const std::vector<TextRow>& rows, const WordPieceTokenizer& tokenizer, const LabelVocab& labels,
              int64_t max_length, const std::string& source = "");

  size_t size() const { return examples_.size(); }
  const TextExample& operator[](size_t i) const { return examples_[i]; }
  const std::vector<TextExample>& examples() const { return examples_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<TextExample> examples_;
  std::string source_;
};

// Deterministic split of rows into (train, valid): `valid_fraction` of the rows, chosen by a
// seeded shuffle, go to valid. Both sides must be non-empty.
std::pair<std::vector<TextRow>, std::vector<TextRow>> split_rows(const std::vector<TextRow>& rows,
                                                                  double valid_fraction, uint64_t seed);

}  // namespace kd
