#pragma once
// Gradient synchronisation: each optimiser group's gradients live in one flat buffer that is
// all-reduced once per step (Note [Gradient sync] in grad_sync.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "recvae/dist/comm.h"

namespace recvae {

/// A group's parameters with their gradients as views of one flat buffer.
struct GradGroup {
  std::vector<torch::Tensor> params;  ///< the group's parameters
  torch::Tensor flat;                 ///< all their gradients, contiguous

  /// Allocates the buffer on `device` and makes every parameter's .grad a view into it.
  void bind(std::vector<torch::Tensor> ps, const torch::Device& device);
  /// Makes every parameter's .grad a view into `flat` again (Note [Shared parameter groups]).
  void attach();
  /// Switches gradient computation for the whole group.
  void set_requires_grad(bool on);
  /// Bytes all-reduced per step.
  std::int64_t bytes() const { return flat.numel() * static_cast<std::int64_t>(sizeof(float)); }
};

/// Sums the group's gradient buffer across ranks (staged through the host when an MPI
/// communicator meets CUDA tensors).
void allreduce_group(GradGroup& group, Communicator& comm);
/// In-place sum of a contiguous float tensor across ranks (same staging rule).
void allreduce_tensor(torch::Tensor t, Communicator& comm);
/// Overwrites `t` with rank 0's values.
void broadcast_tensor(torch::Tensor t, Communicator& comm);

}  // namespace recvae
