#include "recvae/models/slim.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/models/gram.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {

// Note [SLIM on the Gram matrix]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Column j's objective 1/2 |x_j - X w|^2 + l2/2 |w|^2 + l1 sum(w) equals, up to a constant,
// 1/2 w^T G w - w^T G_:j + l2/2 |w|^2 + l1 sum(w): X enters only through G = X^T X (Note
// [Distributed Gram]), so no column pass over X is needed. Cyclic coordinate descent keeps
// g = G w; the minimiser in w_k with the others fixed is max(0, (G_kj - (g_k - G_kk w_k) - l1) /
// (G_kk + l2)), and a change of w_k updates g by that change times G's column k. For binary X, G
// and w are non-negative, so an item that shares no user with j (G_kj = 0) never leaves zero.
// The columns are independent: each rank solves a contiguous range of items (threads split
// it), and the non-zeros are then gathered so that every rank can score its users with all of W.

SparseColumn slim_column(const torch::Tensor& gram, std::int64_t j, double l1, double l2, int max_sweeps,
                         double tolerance) {
  const std::int64_t n = gram.size(0);
  const double* g = gram.data_ptr<double>();  // symmetric: row k is column k
  std::vector<double> w(static_cast<size_t>(n), 0.0), gw(static_cast<size_t>(n), 0.0);
  SparseColumn out;
  for (int sweep = 0; sweep < max_sweeps; ++sweep) {
    double biggest = 0;
    for (std::int64_t k = 0; k < n; ++k) {
      if (k == j) continue;
      const double gkk = g[k * n + k];
      const double c = g[k * n + j] - (gw[k] - gkk * w[k]) - l1;
      const double next = c > 0 ? c / (gkk + l2) : 0.0;
      const double delta = next - w[k];
      if (delta == 0) continue;
      w[k] = next;
      const double* col = g + k * n;
      for (std::int64_t i = 0; i < n; ++i) gw[i] += delta * col[i];
      biggest = std::max(biggest, std::abs(delta));
    }
    out.sweeps = sweep + 1;
    if (biggest <= tolerance) break;
  }
  for (std::int64_t k = 0; k < n; ++k)
    if (w[k] > 0) {
      out.rows.push_back(static_cast<std::int32_t>(k));
      out.values.push_back(static_cast<float>(w[k]));
    }
  return out;
}

SLIMModel::SLIMModel(const SLIMConfig& c, const ModelContext& ctx)
    : ClosedFormModel("SLIM"),
      l1_(c.l1), l2_(c.l2), tolerance_(c.tolerance), max_sweeps_(c.max_sweeps), items_(ctx.items), device_(ctx.device) {
  const double need = gram_bytes(items_) * 1.1;
  const double limit = c.memory_limit_gb > 0 ? c.memory_limit_gb * 1e9 : 0.0;
  if (limit > 0 && need > limit)
    throw InputError("slim: " + std::to_string(items_) + " items need about " + std::to_string(need / 1e9) +
                     " GB per rank for the Gram matrix, above slim.memory_limit_gb " + std::to_string(c.memory_limit_gb));
  rows_ = module_->register_buffer("W_rows", torch::zeros({0}, torch::kLong));
  cols_ = module_->register_buffer("W_cols", torch::zeros({0}, torch::kLong));
  values_ = module_->register_buffer("W_values", torch::zeros({0}));
}

std::string SLIMModel::fit(int, const FitContext& ctx) {
  torch::Tensor gram = distributed_gram(ctx.train, ctx.comm, ctx.threads);

  // This rank's item columns, split over its threads.
  const int rank = ctx.comm.rank(), size = ctx.comm.size();
  const std::int64_t lo = items_ * rank / size, hi = items_ * (rank + 1) / size;
  std::vector<SparseColumn> columns(static_cast<size_t>(hi - lo));
  const int before = at::get_num_threads();
  at::set_num_threads(std::max(1, ctx.threads));
  at::parallel_for(lo, hi, 1, [&](std::int64_t a, std::int64_t b) {
    for (std::int64_t j = a; j < b; ++j)
      columns[static_cast<size_t>(j - lo)] = slim_column(gram, j, l1_, l2_, max_sweeps_, tolerance_);
  });
  at::set_num_threads(before);
  gram = torch::Tensor();

  // Gather every rank's non-zeros as (row, column, value) triplets in column order.
  std::vector<double> mine;
  std::int64_t max_sweeps = 0;
  for (std::int64_t j = lo; j < hi; ++j) {
    const SparseColumn& c = columns[static_cast<size_t>(j - lo)];
    max_sweeps = std::max<std::int64_t>(max_sweeps, c.sweeps);
    for (size_t p = 0; p < c.rows.size(); ++p) {
      mine.push_back(c.rows[p]);
      mine.push_back(static_cast<double>(j));
      mine.push_back(c.values[p]);
    }
  }
  ctx.comm.allreduce_max_host(&max_sweeps, 1);
  std::vector<double> all = allgather_host(ctx.comm, mine);
  const std::int64_t nnz = static_cast<std::int64_t>(all.size() / 3);
  auto triplets = torch::from_blob(all.data(), {nnz, 3}, torch::kFloat64);
  torch::NoGradGuard guard;
  rows_.set_(triplets.select(1, 0).to(torch::kLong));
  cols_.set_(triplets.select(1, 1).to(torch::kLong));
  values_.set_(triplets.select(1, 2).to(torch::kFloat32));
  transposed_ = torch::Tensor();
  if (rank == 0)
    std::fprintf(stderr, "slim: %lld non-zeros in W (%.1f per item), at most %lld sweeps per column\n",
                 static_cast<long long>(nnz), static_cast<double>(nnz) / static_cast<double>(items_),
                 static_cast<long long>(max_sweeps));
  std::ostringstream name;
  name << "l1=" << l1_ << ",l2=" << l2_;
  return name.str();
}

torch::Tensor SLIMModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  if (!transposed_.defined())
    transposed_ = torch::sparse_coo_tensor(torch::stack({cols_, rows_}), values_, {items_, items_}).coalesce().to(device_);
  // x_u W = (W^T x_u^T)^T with the fold-in rows as a dense [items, rows] block.
  auto x = torch::zeros({items_, fold_in.rows}, values_.options().device(device_));
  x.index_put_({fold_in.cols, fold_in.nnz_row}, fold_in.values);
  return torch::mm(transposed_, x).t().contiguous();
}

torch::Tensor SLIMModel::dense_weights() const {
  auto w = torch::zeros({items_, items_});
  w.index_put_({rows_.cpu(), cols_.cpu()}, values_.cpu());
  return w;
}

}  // namespace recvae
