#pragma once
// Adam for per-user parameter rows (Note [Per-user parameters] in models/cdae.cpp), with its
// state in plain tensors so that checkpoints can gather it across ranks and re-shard it.
#include <torch/torch.h>

#include <cstdint>

namespace recvae {

/// One Adam update of `param` from `grad` with moments `exp_avg`, `exp_avg_sq` after `steps`
/// updates (counting this one): torch::optim::Adam's formula (default betas and eps, no weight
/// decay), element by element, so a slice of a tensor updates exactly as the whole tensor would.
void adam_update(torch::Tensor param, const torch::Tensor& grad, torch::Tensor exp_avg, torch::Tensor exp_avg_sq,
                 std::int64_t steps, double lr);

/// adam_update's new moments, with the update it would add to `param` rounded to bfloat16 into
/// `update` instead of applied (Note [Sharded optimizer]: every rank applies the same rounding).
void adam_update_bf16(const torch::Tensor& param, const torch::Tensor& grad, torch::Tensor exp_avg,
                      torch::Tensor exp_avg_sq, std::int64_t steps, double lr, torch::Tensor update);

/// torch::optim::Adam's update (default betas and eps, no weight decay) on one tensor of rows.
class RowAdam {
 public:
  /// Optimises `param` (its .grad is read at each step) with learning rate `lr`.
  RowAdam(torch::Tensor param, double lr);
  /// One update from param.grad().
  void step();

  torch::Tensor param;       ///< the rows
  torch::Tensor exp_avg;     ///< first moments, param's shape
  torch::Tensor exp_avg_sq;  ///< second moments, param's shape
  std::int64_t steps = 0;    ///< updates so far
  double lr;                 ///< learning rate
};

}  // namespace recvae
