#include "recvae/train/row_adam.h"

#include <cmath>

namespace recvae {

RowAdam::RowAdam(torch::Tensor p, double rate)
    : param(std::move(p)), exp_avg(torch::zeros_like(param)), exp_avg_sq(torch::zeros_like(param)), lr(rate) {}

void RowAdam::step() {
  constexpr double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  torch::NoGradGuard guard;
  const auto& g = param.grad();
  ++steps;
  exp_avg.mul_(beta1).add_(g, 1 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2);
  const double bias1 = 1 - std::pow(beta1, static_cast<double>(steps));
  const double bias2 = 1 - std::pow(beta2, static_cast<double>(steps));
  auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(eps);
  param.addcdiv_(exp_avg, denom, -lr / bias1);
}

}  // namespace recvae
