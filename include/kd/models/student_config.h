// What the student kinds share when they read their config section: range-checked sizes and the
// starting embedding table taken from the teacher (`init_embeddings`).
#pragma once

#include <torch/torch.h>

#include <string>

#include "kd/io/config.h"
#include "kd/models/text_classifier.h"

namespace kd {

// section[key] (or `fallback`), which must be >= 1; ConfigError naming the key otherwise.
int64_t positive_setting(ConfigNode& section, const std::string& key, int64_t fallback);
// section["dropout"] (or `fallback`), a probability in [0, 1); ConfigError naming the key otherwise.
double dropout_setting(ConfigNode& section, double fallback);

// The embedding width and starting table a student takes from `init_embeddings`:
//   "teacher"      copies the teacher's word embeddings (V, E_t); when embedding_dim differs from E_t the
//                  table stays E_t wide and `projection` = E_t asks for a learned E_t -> embedding_dim map
//   "teacher_pca"  the teacher's table along its top embedding_dim principal axes (V, embedding_dim);
//                  `axes` (E_t, embedding_dim) maps other teacher tables (positions) the same way
//   "random"       the module's own initialisation (table undefined)
struct EmbeddingPlan {
  int64_t projection = 0;
  torch::Tensor table;  // (V, width) on the CPU; undefined: random
  torch::Tensor axes;   // (E_t, embedding_dim), only for teacher_pca with a narrower width
  torch::Tensor mean;   // (E_t) the teacher table's mean row, subtracted before `axes`
};
// `width_key` names the setting embedding_dim came from, for errors; `fallback` is init_embeddings' default.
EmbeddingPlan plan_embeddings(ConfigNode& section, const TextClassifier& teacher, int64_t embedding_dim,
                              int64_t vocab, const std::string& width_key = "embedding_dim",
                              const std::string& fallback = "teacher");

}  // namespace kd
