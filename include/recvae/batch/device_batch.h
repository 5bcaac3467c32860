#pragma once
// Batch assembly on the compute device: the shard lives there as CSR, and a step uploads only the
// batch's row numbers and per-user stream keys (a few KB), never the rows themselves. The random
// draws are the counter RNG of counter_rng.h written as tensor ops, bit-identical to the host
// path, so a GPU run trains the same model as a CPU run up to floating-point rounding.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "recvae/data/csr.h"
#include "recvae/batch/sparse_batch.h"

namespace recvae {

/// A shard's rows on a device.
struct DeviceShard {
  torch::Tensor indptr;                   ///< int64 [rows + 1]
  torch::Tensor indices;                  ///< int64 [nnz]
  torch::Tensor data;                     ///< float [nnz]
  std::vector<std::int64_t> host_indptr;  ///< host copy: batch sizes are known without a device sync
  std::int64_t row_offset = 0;            ///< global row id of local row 0

  /// Copies `shard` (whose row 0 is global row `row_offset`) to `device`.
  static DeviceShard upload(const CsrMatrix& shard, std::int64_t row_offset, const torch::Device& device);
};

/// The same batch as assemble_batch (sparse_batch.h), built on the shard's device.
SparseBatch assemble_batch_on_device(const DeviceShard& shard, const std::vector<std::int64_t>& global_rows,
                                     const BatchNoise* noise);

/// mix64 of counter_rng.h on int64 tensors (the bits of uint64 values).
torch::Tensor mix64_tensor(const torch::Tensor& x);
/// uniform01 of counter_rng.h, element-wise (float64).
torch::Tensor uniform01_tensor(const torch::Tensor& key, const torch::Tensor& counter);
/// standard_normal of counter_rng.h, element-wise (float32).
torch::Tensor standard_normal_tensor(const torch::Tensor& key, const torch::Tensor& counter);

}  // namespace recvae
