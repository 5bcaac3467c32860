#pragma once
// Gradient synchronisation: each optimiser group's parameters and gradients live in two flat
// buffers (Note [Gradient sync] in grad_sync.cpp); the collectives here move whole buffers or a
// rank's shard of one (Note [Sharded optimizer] in train/group_optimizer.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "recvae/dist/comm.h"

namespace recvae {

/// A group's parameters and gradients as views of two flat buffers of the same length.
struct GradGroup {
  std::vector<torch::Tensor> params;  ///< the group's parameters (views of flat_param)
  torch::Tensor flat;                 ///< all their gradients, contiguous (padded to `flat.numel()`)
  torch::Tensor flat_param;           ///< all their values, contiguous, the same length as `flat`
  std::int64_t numel = 0;             ///< elements of the parameters (the buffers may be longer)

  /// Allocates both buffers on `device`, padded to a multiple of `multiple` elements, copies the
  /// parameters' values in and makes every parameter and its .grad a view into them.
  void bind(std::vector<torch::Tensor> ps, const torch::Device& device, std::int64_t multiple = 1);
  /// Makes every parameter and its .grad views into the buffers again, copying the values of a
  /// parameter that another group had bound (Note [Shared parameter groups]).
  void attach();
  /// Switches gradient computation for the whole group.
  void set_requires_grad(bool on);
  /// Bytes of the group's gradients (fp32, unpadded).
  std::int64_t bytes() const { return numel * static_cast<std::int64_t>(sizeof(float)); }
};

/// The wire type of a float32 or bfloat16 tensor.
WireType wire_type_of(const torch::Tensor& t);
/// In-place sum of a contiguous float32 or bfloat16 tensor across ranks (staged through the host
/// when an MPI communicator meets CUDA tensors).
void allreduce_tensor(torch::Tensor t, Communicator& comm);
/// Sum across ranks of `send` (size() blocks of recv.numel() elements); block rank() into
/// `recv`. Both contiguous, of one wire type (same staging rule).
void reduce_scatter_tensor(const torch::Tensor& send, torch::Tensor recv, Communicator& comm);
/// Every rank's block of `t` (size() blocks, this rank's filled in) to every rank, in place.
void allgather_tensor(torch::Tensor t, Communicator& comm);
/// Overwrites `t` with rank 0's values.
void broadcast_tensor(torch::Tensor t, Communicator& comm);

}  // namespace recvae
