// Language-model losses computed a chunk of tokens at a time, so that peak memory grows with the
// chunk size and not with batch × sequence × vocabulary.
//
// The student is given as its final hidden states h (N, H) — after the final norm, one row per token —
// and its output head W (V, H); logits are h Wᵀ. Each loss is a custom autograd function whose forward
// pass walks over chunks of C rows: it forms the chunk's logits (C, V), the teacher's distribution for
// the same rows, the loss and its analytic gradient with respect to the logits g (C, V), and keeps only
//   ∂loss/∂h = g W (C, H per chunk)   and   ∂loss/∂W += gᵀ h_chunk (V, H),
// so no (N, V) tensor exists at any time and autograd stores nothing per chunk. The backward pass
// multiplies these by the incoming gradient. Under torch::NoGradGuard (evaluation) the gradients are
// not computed at all.
//
// The teacher comes in one of three forms (TokenTargets):
//   hidden   its final hidden states (N, Ht) and head (V, Ht): its logits are formed per chunk too
//   logits   dense logits (N, V) (small vocabularies, tests)
//   top-k    a cached top-k: token ids (N, k), log-probabilities (N, k) at the distillation temperature
//            and the log of the remaining mass (N). The missing mass is handled explicitly: the
//            divergence is taken over k + 1 buckets — the k tokens, and one "rest" bucket whose teacher
//            probability is the remaining mass and whose student probability is 1 − Σ of the student's
//            probabilities of those k tokens (computed as a log-sum-exp over the other tokens). No
//            probability is invented for tokens the teacher did not keep.
// Rows are weighted by `weights` (N) (0 = padding or no next token); the loss is Σ w_i ℓ_i / Σ w_i
// (0 with zero gradient when all weights are 0).
#pragma once

#include <torch/torch.h>

#include "kd/losses/token_divergence.h"

namespace kd {

struct TokenTargets {
  torch::Tensor teacher_hidden, teacher_head;       // (N, Ht), (V, Ht)
  torch::Tensor teacher_logits;                      // (N, V)
  torch::Tensor topk_ids, topk_logprobs, rest_logprob;  // (N, k) int64, (N, k), (N)

  static TokenTargets from_hidden(torch::Tensor hidden, torch::Tensor head);
  static TokenTargets from_logits(torch::Tensor logits);
  static TokenTargets from_topk(torch::Tensor ids, torch::Tensor logprobs, torch::Tensor rest);
  int64_t rows() const;
};

// Σ_i w_i · T² · D_i / Σ_i w_i (a scalar) for the divergence in `o`, `chunk` rows at a time (> 0, else
// ConfigError). Shapes that do not fit together are a DataError.
torch::Tensor chunked_token_divergence(const torch::Tensor& student_hidden, const torch::Tensor& head,
                                       const TokenTargets& teacher, const torch::Tensor& weights,
                                       const DivergenceOptions& o, int64_t chunk);

// Cross-entropy with hard next-token labels (N) int64 (label < 0: ignored), averaged over the labelled
// rows; the same chunking and memory profile as the divergence, for the no-teacher baseline and for
// sequence-level distillation.
torch::Tensor chunked_cross_entropy(const torch::Tensor& student_hidden, const torch::Tensor& head,
                                    const torch::Tensor& labels, int64_t chunk);

// Summed negative log-likelihood of the labelled rows and their count (no gradient): for perplexity.
struct NllSum {
  double nll = 0;
  int64_t tokens = 0;
};
NllSum chunked_nll_sum(const torch::Tensor& student_hidden, const torch::Tensor& head, const torch::Tensor& labels,
                       int64_t chunk);

}  // namespace kd
