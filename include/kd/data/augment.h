// Task-agnostic data augmentation for distillation (Tang et al. 2019, "Distilling Task-Specific
// Knowledge from BERT into Simple Neural Networks", section 3.3).
//
// A small student needs far more examples than a labelled set holds; the teacher can label any text.
// Each augmented copy of a training example is built at the word level (a word is a WordPiece token
// and its "##" continuations):
//   masking:          each word becomes [MASK] with probability mask_prob (the teacher then says how
//                     much that word mattered, a signal the hard label never gives);
//   word swapping:    each unmasked one-token word becomes, with probability swap_prob, one of its
//                     `neighbours` nearest words in the teacher's embedding table (cosine). This stands
//                     in for the paper's POS-guided replacement, which needs a tagger; nearest
//                     neighbours in an embedding table are how TinyBERT (Jiao et al. 2020) augments.
//                     It brings words the labelled rows never hold ("football" -> "soccer", "hockey").
//   n-gram sampling:  with probability ngram_prob the copy is cut to one random span of n words,
//                     n uniform in [1, max_ngram].
// Copies identical to their source, or to a copy already made, are dropped. The copies carry no label
// (-1): only the teacher's soft labels train on them. Deterministic: the same options, seed, rows (and,
// with swaps, neighbour lists) give the same copies on every machine (the generator is std::mt19937_64,
// whose output the standard fixes).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "kd/data/text_dataset.h"
#include "kd/io/config.h"
#include "kd/text/wordpiece_tokenizer.h"

namespace kd {

struct AugmentOptions {
  int64_t copies = 0;        // augmented copies per training example; 0 = no augmentation
  double mask_prob = 0.1;    // per word
  double ngram_prob = 0.25;  // per copy
  int64_t max_ngram = 5;     // words
  double swap_prob = 0.0;    // per unmasked one-token word; 0 = no swapping
  int64_t neighbours = 8;    // candidates per word for swapping
  uint64_t seed = 7;

  bool enabled() const { return copies > 0; }
  bool swaps() const { return copies > 0 && swap_prob > 0; }
  // Canonical text of the settings, e.g. "copies=4 mask=0.1 ngram=0.25 max_ngram=5 seed=7" (then
  // " swap=0.3 neighbours=8" when swapping): part of the knowledge cache's key, so a cache built from
  // other copies is never reused.
  std::string describe() const;
  // The `augment:` map of a config (ConfigError naming the key for an out-of-range value).
  static AugmentOptions from(ConfigNode section);
};

// Swap candidates: for each token id, its nearest whole-word tokens, nearest first.
struct WordNeighbours {
  std::unordered_map<int64_t, std::vector<int64_t>> of;
  // FNV-1a (hex) of the lists in id order. Part of the cache key: the neighbours come from a float
  // product whose last bits may differ between CPUs, so the key records which lists made the copies.
  std::string fingerprint() const;
};

// A token that can be swapped and swapped in: a whole word (no continuation prefix) of at least two
// ASCII letters; special tokens ("[CLS]"), digits, punctuation and other scripts are left alone.
bool swappable_word(const std::string& token, const std::string& continuation_prefix);

// The `k` nearest swappable tokens (cosine similarity in `table`, (V, H)) of each swappable token in
// `data`'s examples.
WordNeighbours nearest_words(const torch::Tensor& table, const WordPieceTokenizer& tokenizer, const TextDataset& data,
                             int64_t k);

// The augmented copies of `data`'s examples, labels -1. Copy j of example i gets the row id
// row_base + j * stride + i, stride = data.size(), so the rows never collide with the source file's.
// Only single-text examples are cut by n-gram sampling (cutting a pair would break it); masking applies
// to both sides of a pair.
// `neighbours` is needed when options.swaps() (Error otherwise).
std::vector<TextExample> augment_examples(const TextDataset& data, const WordPieceTokenizer& tokenizer,
                                          const AugmentOptions& options, int64_t row_base,
                                          const WordNeighbours* neighbours = nullptr);

}  // namespace kd
