// Losses between a student's and a teacher's logits over the last dimension (classes, or the vocabulary
// of a language model). Each returns the loss per position, shape (...) for logits (..., C), so callers
// can weight rows (labelled vs unlabelled) and drop padded positions before averaging.
//
//   kl_div_loss:          T² · KL(softmax(t/T) ‖ softmax(s/T))  (Hinton, Vinyals & Dean 2015: the T² keeps
//                         the gradient scale independent of T). Summed over C; averaging the rows gives
//                         PyTorch's reduction='batchmean'.
//   soft_cross_entropy:   T² · −Σ softmax(t/T) · log_softmax(s/T)  (= KL + the teacher's entropy, same gradient)
//   logit_mse_loss:       mean over C of (s − t)²  (Ba & Caruana 2014; no temperature)
//
// Teacher logits of −inf (classes outside a cached top-k) get probability 0 and add nothing: no NaN in
// the value or the gradient. For logit_mse_loss they are left out of the mean over C (the mean is over
// the classes the teacher gave; 0 for a position with none). NaN teacher logits are never masked.
// Student and teacher must have the same shape (DataError otherwise); T must be finite and > 0
// (ConfigError) for the two temperature losses.
#pragma once

#include <torch/torch.h>

namespace kd {

torch::Tensor kl_div_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          double temperature);  // (...)
torch::Tensor soft_cross_entropy_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                      double temperature);  // (...)
torch::Tensor logit_mse_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                             double temperature);  // (...); temperature unused, kept for one signature

// Mean of per-position losses (...) over positions where mask (same shape, nonzero = keep) is set;
// 0 (with gradient) when nothing is kept.
torch::Tensor masked_mean(const torch::Tensor& per_position, const torch::Tensor& mask);

}  // namespace kd
