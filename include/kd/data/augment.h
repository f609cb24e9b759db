// Task-agnostic data augmentation for distillation (Tang et al. 2019, "Distilling Task-Specific
// Knowledge from BERT into Simple Neural Networks", section 3.3).
//
// A small student needs far more examples than a labelled set holds; the teacher can label any text.
// Each augmented copy of a training example is built at the word level (a word is a WordPiece token
// and its "##" continuations):
//   masking:          each word becomes [MASK] with probability mask_prob (the teacher then says how
//                     much that word mattered, a signal the hard label never gives);
//   n-gram sampling:  with probability ngram_prob the copy is cut to one random span of n words,
//                     n uniform in [1, max_ngram].
// (The paper's third rule, POS-guided word replacement, needs a tagger and is not done.)
// Copies identical to their source, or to a copy already made, are dropped. The copies carry no label
// (-1): only the teacher's soft labels train on them. Deterministic: the same options, seed and rows give
// the same copies on every machine (the generator is std::mt19937_64, whose output the standard fixes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kd/data/text_dataset.h"
#include "kd/io/config.h"
#include "kd/text/wordpiece_tokenizer.h"

namespace kd {

struct AugmentOptions {
  int64_t copies = 0;        // augmented copies per training example; 0 = no augmentation
  double mask_prob = 0.1;    // per word
  double ngram_prob = 0.25;  // per copy
  int64_t max_ngram = 5;     // words
  uint64_t seed = 7;

  bool enabled() const { return copies > 0; }
  // Canonical text of the settings, e.g. "copies=4 mask=0.1 ngram=0.25 max_ngram=5 seed=7": part of
  // the knowledge cache's key, so a cache built from other copies is never reused.
  std::string describe() const;
  // The `augment:` map of a config (ConfigError naming the key for an out-of-range value).
  static AugmentOptions from(ConfigNode section);
};

// The augmented copies of `data`'s examples, labels -1. Copy j of example i gets the row id
// row_base + j * stride + i, stride = data.size(), so the rows never collide with the source file's.
// Only single-text examples are cut by n-gram sampling (cutting a pair would break it); masking applies
// to both sides of a pair.
std::vector<TextExample> augment_examples(const TextDataset& data, const WordPieceTokenizer& tokenizer,
                                          const AugmentOptions& options, int64_t row_base);

}  // namespace kd
