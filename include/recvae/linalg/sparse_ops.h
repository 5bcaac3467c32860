#pragma once
// The two computations every item-sized model shares (Note [Sparse input] in sparse_ops.cpp):
// the first layer as a weighted gather of item rows, and the likelihood terms read at the
// non-zeros plus one reduction per row of the dense logits.
#include <torch/torch.h>

#include <cstdint>

#include "recvae/batch/sparse_batch.h"

namespace recvae {

/// x W + b for the batch's rows, x given by `weights` at the batch's non-zeros; `w` is
/// item-major [items, out].
torch::Tensor sparse_linear(const torch::Tensor& w, const torch::Tensor& b, const SparseBatch& batch,
                            const torch::Tensor& weights);
/// The raw values with the batch's dropout mask and 1/(1-q) scale, [nnz] (batch assembly applies
/// them to the normalised values; their ratio is the mask times the scale). Models whose input is
/// the raw row (CDAE's corrupted x~, AutoRec) use it.
torch::Tensor dropped_values(const SparseBatch& batch);
/// The [rows, items] logits at the batch's non-zeros, [nnz].
torch::Tensor at_nonzeros(const torch::Tensor& logits, const SparseBatch& batch);
/// Per-row sums of a value per non-zero: [nnz] -> [rows].
torch::Tensor sum_rows(const torch::Tensor& per_nonzero, const SparseBatch& batch);
/// Multinomial log-likelihood per row: sum_i x_ui log_softmax(logits_u)_i, [rows].
torch::Tensor multinomial_log_likelihood(const torch::Tensor& logits, const SparseBatch& batch);
/// Bernoulli log-likelihood per row over all items: sum_i x_ui log s(l_ui) + (1 - x_ui) log(1 - s(l_ui)), [rows].
torch::Tensor logistic_log_likelihood(const torch::Tensor& logits, const SparseBatch& batch);
/// Squared error per row over all items: sum_i (x_ui - out_ui)^2, [rows].
torch::Tensor squared_error(const torch::Tensor& out, const SparseBatch& batch);

/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Linear's default initialisation.
void init_torch_default(torch::Tensor& t, std::int64_t fan_in);
/// Glorot (Xavier) uniform for a [fan_in, fan_out] or [fan_out, fan_in] matrix.
void init_xavier_uniform(torch::Tensor& t, std::int64_t fan_in, std::int64_t fan_out);
/// TensorFlow's truncated normal (re-drawn beyond two standard deviations).
void init_truncated_normal(torch::Tensor& t, double stddev);

}  // namespace recvae
