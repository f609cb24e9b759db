// Tokenized classification examples, ready to be batched.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
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
  // Already tokenized examples (a cache, or tests that need no tokenizer).
  explicit TextDataset(std::vector<TextExample> examples, std::string source = "")
      : examples_(std::move(examples)), source_(std::move(source)) {}

  size_t size() const { return examples_.size(); }
  const TextExample& operator[](size_t i) const { return examples_[i]; }
  const std::vector<TextExample>& examples() const { return examples_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<TextExample> examples_;
  std::string source_;
};

// A uniform integer in [0, bound) from the generator's raw output (rejection sampling), and a
// Fisher-Yates shuffle built on it. std::uniform_int_distribution and std::shuffle are
// implementation-defined, so a seed would give different orders on different standard libraries;
// std::mt19937_64's output is fixed by the standard. Inline so the batcher needs no tokenizer.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  // Reject the top partial copy of [0, bound) so every residue is equally likely.
  const uint64_t limit = std::mt19937_64::max() - std::mt19937_64::max() % bound;
  uint64_t x;
  do x = rng(); while (x >= limit);
  return x % bound;
}
template <typename T>
void seeded_shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[uniform_below(rng, i)]);
}


}  // namespace kd
