// Feature-knowledge losses for distilling Transformers: between a student's and a teacher's hidden
// states, attention scores or self-attention relations, layer by layer (which layers are paired, and
// the projection of a narrower student to the teacher's width, are the caller's business).
//
//   hidden_mse           mean over real positions and the H dims of (s − t)²: TinyBERT's hidden-state and
//                        embedding loss (Jiao et al. 2020), the student already projected to the teacher's H.
//   hidden_cosine        mean over real positions of 1 − cos(s, t): DistilBERT's cosine embedding loss
//                        (Sanh et al. 2019).
//   attention_score_mse  mean over heads and (query, key) pairs of real tokens of (s − t)² on the raw scores
//                        QKᵀ/√d, before the mask bias and softmax: TinyBERT's attention loss.
//   attention_kl         KL(teacher attention ‖ student attention) per head and real query, the attention
//                        being the softmax of the raw scores over the real keys; mean over heads and real
//                        queries: MiniLM's self-attention distribution transfer (Wang et al. 2020).
//   relation_kl          MiniLMv2's multi-head self-attention relations (Wang et al. 2021): the last dim of
//                        x (queries, keys or values of one layer) is split into R equal parts x_r of width
//                        d_r, the relation is softmax over the real keys of x_r x_rᵀ / √d_r, and the loss is
//                        KL(teacher relation ‖ student relation), mean over the R relation heads and the
//                        real queries. Student and teacher widths may differ (only R must agree); with R =
//                        the number of attention heads, on the values, it is MiniLM v1's value-relation loss.
//
// mask (B, T) is the batch's attention mask (nonzero = real token, 0 = padding; any integer, float or bool
// dtype). Padding takes no part: whatever a padded position (or a score whose query or key is padding)
// holds, even inf or NaN, changes neither the value nor any gradient, and its gradient is exactly 0. Each
// function returns a scalar in the student's dtype, differentiable with respect to the student; the
// teacher is detached (a constant) and converted to the student's dtype. With no real position (no
// real query) at all the result is 0, with a zero gradient, never NaN.
//
// Errors: DataError naming the function and both shapes for a wrong rank, student and teacher shapes that
// do not agree (B and T; H for the hidden losses; heads for the attention losses, with the hint that a
// head mapping is needed), a mask that is not (B, T), a non-floating student, or a width not divisible by
// relation_heads; ConfigError for relation_heads < 1.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace kd {

torch::Tensor hidden_mse(const torch::Tensor& student,   // (B, T, H)
                         const torch::Tensor& teacher,   // (B, T, H)
                         const torch::Tensor& mask);     // (B, T) → ()
torch::Tensor hidden_cosine(const torch::Tensor& student,  // (B, T, H)
                            const torch::Tensor& teacher,  // (B, T, H)
                            const torch::Tensor& mask);    // (B, T) → ()

torch::Tensor attention_score_mse(const torch::Tensor& student_scores,  // (B, h, T, T) QKᵀ/√d, no mask bias
                                  const torch::Tensor& teacher_scores,  // (B, h, T, T)
                                  const torch::Tensor& mask);           // (B, T) → ()
torch::Tensor attention_kl(const torch::Tensor& student_scores,  // (B, h, T, T) QKᵀ/√d, no mask bias
                           const torch::Tensor& teacher_scores,  // (B, h, T, T)
                           const torch::Tensor& mask);           // (B, T) → ()

torch::Tensor relation_kl(const torch::Tensor& student,  // (B, T, Hs)
                          const torch::Tensor& teacher,  // (B, T, Ht)
                          const torch::Tensor& mask,     // (B, T)
                          int64_t relation_heads);       // R ≥ 1, divides Hs and Ht → ()

}  // namespace kd
