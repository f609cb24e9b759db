// A smaller decoder for distilling a causal LM: the teacher's width, heads and vocabulary (so it shares
// the teacher's tokenizer and its head can be compared token for token) with fewer layers, optionally
// initialized from the teacher — token embeddings (and with them the tied head), the final norm, and a
// chosen subset of the teacher's layers copied in order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kd/models/llama.h"

namespace kd {

struct LmStudentOptions {
  int64_t num_layers = 3;
  // "teacher": copy embeddings, final norm and the layers below; "random": the default initialization.
  std::string init = "teacher";
  // Teacher layer (0-based) for each student layer. Empty: spread evenly over the teacher's depth,
  // first and last included (round(i · (L_t − 1) / (n − 1)); layer 0 for a one-layer student).
  std::vector<int64_t> teacher_layers;
  uint64_t seed = 0;  // initialization of the random parts (all of them with init "random")

  // The layer list actually used for a teacher of `teacher_layers_count` layers. ConfigError (naming
  // student.*) when the student is not smaller than the teacher, a listed layer does not exist, the
  // list's length is not num_layers, or init is unknown.
  std::vector<int64_t> resolved_layers(int64_t teacher_layers_count) const;
};

Llama make_lm_student(const Llama& teacher, const LmStudentOptions& options);

// Parameters, all and without the token embedding and output head (the usual "non-embedding" count).
int64_t count_parameters(const Llama& model);
int64_t count_non_embedding_parameters(const Llama& model);

}  // namespace kd
