// Finite-difference gradient check for the loss tests: central differences in float64.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>

namespace kd::test {

// Largest |autograd − numeric| / max(1, |numeric|) over the elements of x, where f maps x (any shape,
// float64) to a scalar. The numeric derivative is (f(x + eps·e_i) − f(x − eps·e_i)) / (2·eps); its
// error is O(eps²) from truncation plus O(1e-16·|f| / eps) from rounding, about 1e-10 here.
inline double fd_gradient_error(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                const torch::Tensor& at, double eps = 1e-6) {
  auto x = at.to(torch::kFloat64).detach().clone().requires_grad_(true);
  const auto analytic = torch::autograd::grad({f(x)}, {x})[0].reshape(-1);
  double worst = 0;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < x.numel(); ++i) {
    auto plus = x.detach().clone(), minus = x.detach().clone();
    plus.view(-1)[i] += eps;
    minus.view(-1)[i] -= eps;
    const double numeric = (f(plus).item<double>() - f(minus).item<double>()) / (2 * eps);
    const double a = analytic[i].item<double>();
    if (!std::isfinite(a) || !std::isfinite(numeric)) return INFINITY;  // std::max would swallow a NaN
    worst = std::max(worst, std::abs(a - numeric) / std::max(1.0, std::abs(numeric)));
  }
  return worst;
}

}  // namespace kd::test
