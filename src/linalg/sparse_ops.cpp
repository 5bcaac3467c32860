#include "recvae/linalg/sparse_ops.h"

#include <cmath>

namespace recvae {

// Note [Sparse input]
// ~~~~~~~~~~~~~~~~~~~
// A user row has ~0.35% non-zeros (ML-20M: ~70 of 20,108 items), so no model builds a dense
// users x items input:
//  * L2 normalisation and dropout act on the non-zero values (dropout of a zero is a zero), in
//    batch assembly (batch/sparse_batch.h).
//  * The first layer x W is embedding_bag(W, items, weights) in sum mode: a gather of the rows
//    of the item-major W scaled by the input values; its backward scatter-adds into those rows.
//    The gradient is a sparse tensor of the touched rows (sparse=true), which accumulates into
//    the dense gradient buffer (Note [Gradient sync]) with one index_add: a dense gradient would
//    write and then add a whole items x hidden matrix, a cost per step that no number of ranks
//    divides.
//  * The output side needs the dense [rows, items] logits anyway; every likelihood splits into a
//    reduction over each row of them and a sum over the non-zeros:
//      multinomial: sum_k x_k l_{i_k} - |x_u| logsumexp(l_u)
//      logistic:    sum_i log s(-l_i) + sum_k x_k l_{i_k}         (binary x)
//      squared:     sum_i o_i^2 - 2 sum_k x_k o_{i_k} + sum_k x_k^2

torch::Tensor sparse_linear(const torch::Tensor& w, const torch::Tensor& b, const SparseBatch& batch,
                            const torch::Tensor& weights) {
  auto out = std::get<0>(torch::embedding_bag(w, batch.cols, batch.offsets, /*scale_grad_by_freq=*/false,
                                              /*mode=sum*/ 0, /*sparse=*/true, weights));
  // embedding_bag returns no rows for a batch without users; keep the [rows, out] shape.
  if (out.size(0) != batch.rows) out = torch::zeros({batch.rows, w.size(1)}, w.options());
  return b.defined() ? out + b : out;
}

torch::Tensor dropped_values(const SparseBatch& b) {
  return b.values * torch::where(b.clean_input != 0, b.input / b.clean_input, torch::zeros_like(b.input));
}

torch::Tensor at_nonzeros(const torch::Tensor& logits, const SparseBatch& batch) {
  return logits.reshape({-1}).index_select(0, batch.nnz_row * logits.size(1) + batch.cols);
}

torch::Tensor sum_rows(const torch::Tensor& per_nonzero, const SparseBatch& batch) {
  return torch::zeros({batch.rows}, per_nonzero.options()).index_add(0, batch.nnz_row, per_nonzero);
}

torch::Tensor multinomial_log_likelihood(const torch::Tensor& logits, const SparseBatch& batch) {
  return sum_rows(batch.values * at_nonzeros(logits, batch), batch) - batch.row_sum * torch::logsumexp(logits, 1);
}

torch::Tensor logistic_log_likelihood(const torch::Tensor& logits, const SparseBatch& batch) {
  // log s(l) = l + log s(-l), so the positives add x*l to the all-negative sum.
  return torch::log_sigmoid(-logits).sum(1) + sum_rows(batch.values * at_nonzeros(logits, batch), batch);
}

torch::Tensor squared_error(const torch::Tensor& out, const SparseBatch& batch) {
  const auto picked = at_nonzeros(out, batch);
  return out.pow(2).sum(1) + sum_rows(batch.values * (batch.values - 2 * picked), batch);
}

void init_torch_default(torch::Tensor& t, std::int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  torch::NoGradGuard guard;
  t.uniform_(-bound, bound);
}

void init_xavier_uniform(torch::Tensor& t, std::int64_t fan_in, std::int64_t fan_out) {
  const double bound = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  torch::NoGradGuard guard;
  t.uniform_(-bound, bound);
}

void init_truncated_normal(torch::Tensor& t, double stddev) {
  torch::NoGradGuard guard;
  t.normal_(0.0, stddev);
  for (int round = 0; round < 100; ++round) {
    auto outside = t.abs() > 2 * stddev;
    if (!outside.any().item<bool>()) break;
    t.copy_(torch::where(outside, torch::randn_like(t) * stddev, t));
  }
}

}  // namespace recvae
