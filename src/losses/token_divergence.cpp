#include "kd/losses/token_divergence.h"

#include <cmath>
#include <limits>

#include "kd/error.h"

namespace kd {

namespace {

struct Named {
  const char* name;
  Divergence kind;
};
const Named kNames[] = {{"fkl", Divergence::ForwardKl}, {"rkl", Divergence::ReverseKl},
                        {"jsd", Divergence::Jsd},       {"tvd", Divergence::Tvd},
                        {"skew_kl", Divergence::SkewKl}, {"skew_rkl", Divergence::SkewReverseKl}};

// Σ_b a_b (log a_b − log c_b) over the last dimension, with 0 · log 0 = 0 (a_b = 0 adds nothing even
// where log c_b is −inf).
torch::Tensor kl_rows(const torch::Tensor& log_a, const torch::Tensor& log_c) {
  const auto a = log_a.exp();
  const auto support = a > 0;
  const auto term = a * (torch::where(support, log_a, torch::zeros_like(log_a)) -
                         torch::where(support, log_c, torch::zeros_like(log_c)));
  return torch::where(support, term, torch::zeros_like(term)).sum(-1);
}

// log(w_a · a + w_c · c) from log a and log c, for mixing weights in [0, 1].
torch::Tensor log_mix(const torch::Tensor& log_a, double w_a, const torch::Tensor& log_c, double w_c) {
  const double ninf = -std::numeric_limits<double>::infinity();
  return torch::logaddexp(log_a + (w_a > 0 ? std::log(w_a) : ninf), log_c + (w_c > 0 ? std::log(w_c) : ninf));
}

// x where the probability exp(log_p) is positive, else 0 (keeps −inf · 0 out of products).
torch::Tensor on_support(const torch::Tensor& log_p, const torch::Tensor& x) {
  return torch::where(log_p > -std::numeric_limits<double>::infinity(), x, torch::zeros_like(x));
}

}  // namespace

Divergence parse_divergence(const std::string& name, const std::string& where) {
  for (const auto& n : kNames)
    if (name == n.name) return n.kind;
  std::string known;
  for (const auto& n : kNames) known += (known.empty() ? "" : ", ") + std::string(n.name);
  throw ConfigError(located(where, "unknown divergence '" + name + "'", "known divergences: " + known));
}

std::string divergence_name(Divergence d) {
  for (const auto& n : kNames)
    if (n.kind == d) return n.name;
  return "?";
}

std::vector<std::string> divergence_names() {
  std::vector<std::string> v;
  for (const auto& n : kNames) v.emplace_back(n.name);
  return v;
}

void DivergenceOptions::validate() const {
  if (!(std::isfinite(temperature) && temperature > 0))
    throw ConfigError(located("distill.temperature", "must be a finite number > 0, got " + std::to_string(temperature)));
  if (kind == Divergence::Jsd && !(mix > 0 && mix < 1))
    throw ConfigError(located("distill.mix", "the JSD mixing coefficient β must be in (0, 1), got " + std::to_string(mix)));
  if ((kind == Divergence::SkewKl || kind == Divergence::SkewReverseKl) && !(mix >= 0 && mix < 1))
    throw ConfigError(located("distill.mix", "the skew coefficient α must be in [0, 1), got " + std::to_string(mix)));
}

DivergenceRows divergence_rows(const torch::Tensor& log_p, const torch::Tensor& log_q, const DivergenceOptions& o) {
  // log_p, log_q: (R, B)
  const auto P = log_p.exp(), Q = log_q.exp();
  DivergenceRows r;
  switch (o.kind) {
    case Divergence::ForwardKl:
      r.value = kl_rows(log_q, log_p);
      r.u = -Q;
      break;
    case Divergence::ReverseKl:
      r.value = kl_rows(log_p, log_q);
      r.u = on_support(log_p, P * (log_p - log_q));  // the "+ P" of ∂/∂log P cancels in Σ_b u_b terms
      break;
    case Divergence::Jsd: {
      const double b = o.mix;
      const auto log_m = log_mix(log_q, b, log_p, 1 - b);
      r.value = b * kl_rows(log_q, log_m) + (1 - b) * kl_rows(log_p, log_m);
      r.u = (1 - b) * on_support(log_p, P * (log_p - log_m));
      break;
    }
    case Divergence::Tvd:
      r.value = 0.5 * (P - Q).abs().sum(-1);
      r.u = 0.5 * P * (P - Q).sign();
      break;
    case Divergence::SkewKl: {
      const double a = o.mix;
      const auto log_m = log_mix(log_q, a, log_p, 1 - a);
      r.value = kl_rows(log_q, log_m);
      r.u = -(1 - a) * (log_p + log_q - log_m).exp();  // −(1−α) P Q / M
      break;
    }
    case Divergence::SkewReverseKl: {
      const double a = o.mix;
      const auto log_m = log_mix(log_p, a, log_q, 1 - a);
      r.value = kl_rows(log_p, log_m);
      r.u = on_support(log_p, P * (log_p - log_m)) - a * (2 * log_p - log_m).exp();  // P(log P/M) − α P²/M
      break;
    }
  }
  return r;
}

torch::Tensor token_divergence(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                               const DivergenceOptions& o) {
  o.validate();
  if (!student_logits.defined() || student_logits.sizes() != teacher_logits.sizes())
    throw DataError("token_divergence: student and teacher logits must have the same shape (..., V)");
  const double T = o.temperature;
  const auto log_p = torch::log_softmax(student_logits / T, -1);
  const auto log_q = torch::log_softmax(teacher_logits / T, -1);
  const auto P = log_p.exp(), Q = log_q.exp();
  torch::Tensor v;
  switch (o.kind) {
    case Divergence::ForwardKl: v = kl_rows(log_q, log_p); break;
    case Divergence::ReverseKl: v = kl_rows(log_p, log_q); break;
    case Divergence::Jsd: {
      const auto M = o.mix * Q + (1 - o.mix) * P;
      v = o.mix * kl_rows(log_q, M.log()) + (1 - o.mix) * kl_rows(log_p, M.log());
      break;
    }
    case Divergence::Tvd: v = 0.5 * (P - Q).abs().sum(-1); break;
    case Divergence::SkewKl: v = kl_rows(log_q, (o.mix * Q + (1 - o.mix) * P).log()); break;
    case Divergence::SkewReverseKl: v = kl_rows(log_p, (o.mix * P + (1 - o.mix) * Q).log()); break;
  }
  return v * (T * T);
}

}  // namespace kd
