#include "recvae/train/row_adam.h"

#include <cmath>

namespace recvae {

RowAdam::RowAdam(torch::Tensor p, double rate)
    : param(std::move(p)), exp_avg(torch::zeros_like(param)), exp_avg_sq(torch::zeros_like(param)), lr(rate) {}

namespace {

constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;

bool fusable(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous();
}

// The fused loop of Note [Fused Adam]: new moments in place, then `apply(i, update)` with the
// element's update (the amount Adam adds to the parameter).
template <class Apply>
void fused_adam(const torch::Tensor& grad, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq, std::int64_t steps,
                double lr, Apply&& apply) {
  const float b1 = static_cast<float>(kBeta1), one_b1 = static_cast<float>(1 - kBeta1);
  const float b2 = static_cast<float>(kBeta2), one_b2 = static_cast<float>(1 - kBeta2);
  const double bias1 = 1 - std::pow(kBeta1, static_cast<double>(steps));
  const double bias2 = 1 - std::pow(kBeta2, static_cast<double>(steps));
  const float sqrt_bias2 = static_cast<float>(std::sqrt(bias2)), eps = static_cast<float>(kEps);
  const float neg_step = static_cast<float>(-lr / bias1);
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  at::parallel_for(0, grad.numel(), 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const float gi = g[i];
      const float mi = m[i] * b1 + one_b1 * gi;
      const float vi = v[i] * b2 + one_b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      apply(i, neg_step * (mi / (std::sqrt(vi) / sqrt_bias2 + eps)));
    }
  });
}

}  // namespace

// Note [Fused Adam]
// ~~~~~~~~~~~~~~~~~
// torch's Adam is eight element-wise kernels, each a pass over the parameters, gradients or
// moments: on a CPU it is memory-bound and took about a sixth of a RecVAE encoder step on the
// ML-20M shape. On CPU tensors the same arithmetic runs as one loop (one read of p, g, m, v and
// one write of p, m, v per element), each element's operations in torch's order and precision
// (float, scalars rounded to float as torch's CPU kernels do), so it matches the kernel sequence
// to the last bit or so; devices keep the kernel sequence.
void adam_update(torch::Tensor param, const torch::Tensor& grad, torch::Tensor exp_avg, torch::Tensor exp_avg_sq,
                 std::int64_t steps, double lr) {
  torch::NoGradGuard guard;
  if (fusable(param) && fusable(grad) && fusable(exp_avg) && fusable(exp_avg_sq)) {
    float* p = param.data_ptr<float>();
    fused_adam(grad, exp_avg, exp_avg_sq, steps, lr, [p](std::int64_t i, float u) { p[i] = p[i] + u; });
    return;
  }
  exp_avg.mul_(kBeta1).add_(grad, 1 - kBeta1);
  exp_avg_sq.mul_(kBeta2).addcmul_(grad, grad, 1 - kBeta2);
  const double bias1 = 1 - std::pow(kBeta1, static_cast<double>(steps));
  const double bias2 = 1 - std::pow(kBeta2, static_cast<double>(steps));
  auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(kEps);
  param.addcdiv_(exp_avg, denom, -lr / bias1);
}

void adam_update_bf16(const torch::Tensor& param, const torch::Tensor& grad, torch::Tensor exp_avg,
                      torch::Tensor exp_avg_sq, std::int64_t steps, double lr, torch::Tensor update) {
  torch::NoGradGuard guard;
  if (fusable(grad) && fusable(exp_avg) && fusable(exp_avg_sq) && update.device().is_cpu() && update.is_contiguous()) {
    auto* out = update.data_ptr<at::BFloat16>();
    fused_adam(grad, exp_avg, exp_avg_sq, steps, lr, [out](std::int64_t i, float u) { out[i] = at::BFloat16(u); });
    return;
  }
  auto moved = param.clone();
  adam_update(moved, grad, exp_avg, exp_avg_sq, steps, lr);
  update.copy_((moved - param).to(torch::kBFloat16));
}

void RowAdam::step() { adam_update(param, param.grad(), exp_avg, exp_avg_sq, ++steps, lr); }

}  // namespace recvae
