#include "recvae/models/ease.h"

#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/models/gram.h"
#include "recvae/models/sparse_ops.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {

namespace {

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

constexpr int kResidualColumns = 16;
constexpr double kResidualTolerance = 1e-6;

}  // namespace

torch::Tensor ease_weights(const torch::Tensor& gram, double lambda) {
  const std::int64_t n = gram.size(0);
  auto a = gram.clone();
  a.diagonal().add_(lambda);
  torch::Tensor l, info;
  std::tie(l, info) = torch::linalg_cholesky_ex(a);
  if (info.item<std::int64_t>() != 0)
    throw InputError("EASE: G + lambda I is not positive definite at lambda " + std::to_string(lambda) +
                             " (leading minor " + std::to_string(info.item<std::int64_t>()) + "); raise ease.lambda");
  auto p = torch::cholesky_inverse(l);
  l = torch::Tensor();
  // Residual on a few evenly spread columns: (G + lambda I) P e_j = e_j.
  auto cols = torch::linspace(0, static_cast<double>(n - 1), std::min<std::int64_t>(n, kResidualColumns)).to(torch::kLong);
  auto r = a.matmul(p.index_select(1, cols));
  r.index_put_({cols, torch::arange(cols.size(0))}, r.index({cols, torch::arange(cols.size(0))}) - 1.0);
  const double residual = r.abs().max().item<double>();
  if (!(residual < kResidualTolerance * std::max(1.0, a.diagonal().max().item<double>() / lambda)))
    throw InputError("EASE: the inverse of G + lambda I failed its residual check (" + std::to_string(residual) +
                             ") at lambda " + std::to_string(lambda) + "; G is too ill-conditioned: raise ease.lambda");
  a = torch::Tensor();
  auto b = p / (-p.diagonal()).unsqueeze(0);  // column j divided by -P_jj
  b.diagonal().zero_();
  return b;
}

EASEModel::EASEModel(const EASEConfig& c, const ModelContext& ctx)
    : ClosedFormModel("EASE"), lambdas_(c.lambda), items_(ctx.items), device_(ctx.device) {
  // Peak host memory of a fit: G (float64), G + lambda I and its Cholesky factor / inverse
  // (float64, two at a time), B in float64 before the float32 copy.
  const double need = 4 * gram_bytes(items_) + gram_bytes(items_) / 2;
  const double limit = c.memory_limit_gb > 0 ? c.memory_limit_gb * 1e9 : 0.8 * physical_memory_bytes();
  if (limit > 0 && need > limit)
    throw InputError("ease: " + std::to_string(items_) + " items need about " + std::to_string(need / 1e9) +
                     " GB per rank (the Gram matrix, its inverse and B in float64), above the limit of " +
                     std::to_string(limit / 1e9) + " GB (ease.memory_limit_gb; 0 means 80% of this node's memory)");
  b_ = module_->register_buffer("B", torch::zeros({0}, torch::TensorOptions().device(device_)));
}

std::string EASEModel::fit(int candidate, const FitContext& ctx) {
  const double lambda = lambdas_.at(static_cast<size_t>(candidate));
  if (!gram_.defined()) gram_ = distributed_gram(ctx.train, ctx.comm, ctx.threads);  // once for every lambda
  // Every rank solves the same G (bit-identical after the reduction), so every replica of B is
  // the same without a broadcast.
  torch::Tensor b = ease_weights(gram_, lambda);
  torch::NoGradGuard guard;
  b_.set_(b.to(torch::kFloat32).to(device_));
  std::ostringstream name;
  name << "lambda=" << lambda;
  return name.str();
}

torch::Tensor EASEModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  if (b_.dim() != 2) throw std::logic_error("ease: scores before a fit");
  // x_u B: the rows of B at the user's items, weighted by x_u (Note [Sparse input]).
  return sparse_linear(b_, torch::zeros({items_}, b_.options()), fold_in, fold_in.values);
}

}  // namespace recvae
