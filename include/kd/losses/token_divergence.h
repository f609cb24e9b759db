// Token-level divergences between a student's and a teacher's next-token distributions, for
// distilling causal language models. Every divergence is computed over rows of "buckets": either the
// whole vocabulary, or — for a teacher cached as its top-k tokens — k + 1 buckets, the k tokens plus
// one "rest" bucket holding everything else (see TokenTargets).
//
// With P the student's and Q the teacher's bucket distribution (both at temperature T):
//   fkl       forward KL   KL(Q ‖ P) = Σ Q (log Q − log P)                 (mode-covering; Hinton et al.)
//   rkl       reverse KL   KL(P ‖ Q) = Σ P (log P − log Q)                 (mode-seeking; MiniLLM)
//   jsd       generalized Jensen–Shannon with mixing β (GKD, Agarwal et al. 2024):
//             β KL(Q ‖ M) + (1 − β) KL(P ‖ M),  M = β Q + (1 − β) P;  β = 0.5 is the usual JSD
//   tvd       total variation  ½ Σ |P − Q|
//   skew_kl   skew forward KL  KL(Q ‖ α Q + (1 − α) P)  (DistiLLM, Ko et al. 2024); α = 0 is fkl
//   skew_rkl  skew reverse KL  KL(P ‖ α P + (1 − α) Q)
// Every value is multiplied by T² (as kl_div_loss does), so the gradient scale of the KL family does
// not depend on T. 0 · log 0 terms are 0 (a teacher bucket of probability 0 adds nothing to fkl).
//
// The row function returns, besides the value, u = ∂value/∂(log P_b) per bucket; the gradient with
// respect to the student's logits z follows as ∂/∂z_j = (p_j / P_b(j)) u_b(j) − p_j Σ_b u_b, which is
// what the chunked loss (chunked_lm_loss.h) uses. Everything is in the dtype of the inputs.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace kd {

enum class Divergence { ForwardKl, ReverseKl, Jsd, Tvd, SkewKl, SkewReverseKl };

// "fkl", "rkl", "jsd", "tvd", "skew_kl", "skew_rkl" (ConfigError listing these for anything else;
// `where` names the config key).
Divergence parse_divergence(const std::string& name, const std::string& where = "divergence");
std::string divergence_name(Divergence d);
std::vector<std::string> divergence_names();

struct DivergenceOptions {
  Divergence kind = Divergence::ForwardKl;
  double temperature = 1.0;  // finite, > 0
  double mix = 0.5;          // β of jsd, in (0, 1); α of skew_kl / skew_rkl, in [0, 1)
  // ConfigError naming the field when out of range.
  void validate() const;
};

struct DivergenceRows {
  torch::Tensor value;  // (R) per row, not yet multiplied by T²
  torch::Tensor u;      // (R, B) ∂value/∂(log P_b)
};

// log_p, log_q: (R, B) log-probabilities of the student's and the teacher's buckets (rows sum to 1;
// −inf allowed for probability 0).
DivergenceRows divergence_rows(const torch::Tensor& log_p, const torch::Tensor& log_q, const DivergenceOptions& o);

// Reference over full logits with plain autograd (materializes everything): per position (...),
// T² · D(softmax(teacher / T), softmax(student / T)). Used by the tests and the unchunked memory
// comparison; training uses the chunked loss.
torch::Tensor token_divergence(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                               const DivergenceOptions& o);

}  // namespace kd
