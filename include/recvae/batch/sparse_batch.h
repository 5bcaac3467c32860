#pragma once
// A batch of user rows in the form the model consumes: the non-zeros only, never a dense
// users x items matrix (Note [Sparse input] in model.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "recvae/data/csr.h"

namespace recvae {

/// Tensors describing the rows of one batch (all on the batch's device).
struct SparseBatch {
  std::int64_t rows = 0;      ///< users in the batch
  torch::Tensor users;        ///< int64 [rows]: global row id of each user in its split
  torch::Tensor cols;         ///< int64 [nnz]: item of each non-zero
  torch::Tensor offsets;      ///< int64 [rows]: start of each row in cols (embedding_bag layout)
  torch::Tensor nnz_row;      ///< int64 [nnz]: row of each non-zero
  torch::Tensor values;       ///< float [nnz]: raw values x_ui (reconstruction target)
  torch::Tensor input;        ///< float [nnz]: encoder input, L2-normalised and dropped out
  torch::Tensor clean_input;  ///< float [nnz]: L2-normalised, no dropout (encoder_old, eval)
  torch::Tensor row_sum;      ///< float [rows]: sum of values, |x_u| for binary data
  torch::Tensor noise;        ///< float [rows, D]: reparameterisation noise; undefined in eval
};

/// What makes a training batch random: the (seed, epoch, pass) stream of each user.
struct BatchNoise {
  std::uint64_t seed = 0;       ///< run seed
  std::int64_t epoch = 0;       ///< epoch index
  std::int64_t pass = 0;        ///< pass index within the epoch
  double dropout = 0.0;         ///< input dropout rate
  std::int64_t latent_dim = 0;  ///< width of the noise rows
};

/// Builds a batch from rows of `shard` (local row = global row - shard_offset). With `noise`,
/// draws each user's dropout mask and Gaussian noise from the user's own stream (Note
/// [World-size invariance] in batch_plan.h); without, the batch is deterministic (evaluation).
SparseBatch assemble_batch(const CsrMatrix& shard, std::int64_t shard_offset,
                           const std::vector<std::int64_t>& global_rows, const BatchNoise* noise,
                           const torch::Device& device);

/// Rows [lo, hi) of `shard` (local indices) as an evaluation batch.
SparseBatch assemble_eval_batch(const CsrMatrix& shard, std::int64_t lo, std::int64_t hi, const torch::Device& device);

}  // namespace recvae
