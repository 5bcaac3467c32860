#include "recvae/models/ease.h"

#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/linalg/gram.h"
#include "recvae/linalg/spd_inverse.h"
#include "recvae/linalg/sparse_ops.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {

namespace {

constexpr int kResidualColumns = 16;

// Bound on max |(G + lambda I) P e_j - e_j| relative to the conditioning proxy max(1,
// max_i A_ii / lambda): float64 solves of the test and real data sets stay below 1e-9 of it,
// float32 ones below 1e-3; a residual beyond these means the factorisation lost the matrix.
double residual_tolerance(torch::ScalarType dtype) { return dtype == torch::kFloat64 ? 1e-6 : 5e-2; }

std::vector<std::int64_t> spread_columns(std::int64_t n) {
  std::vector<std::int64_t> cols;
  const std::int64_t k = std::min<std::int64_t>(n, kResidualColumns);
  for (std::int64_t j = 0; j < k; ++j) cols.push_back(k == 1 ? 0 : j * (n - 1) / (k - 1));
  return cols;
}

std::string lambda_text(double lambda) {
  std::ostringstream s;
  s << lambda;
  return s.str();
}

}  // namespace

void ease_weights_in_place(torch::Tensor& a, double lambda, const torch::Tensor& a_columns,
                           const std::vector<std::int64_t>& cols, int threads) {
  const double max_diag = a.diagonal().max().item<double>();
  const std::int64_t failed = invert_spd(a, threads);
  if (failed != 0)
    throw InputError("EASE: G + lambda I is not positive definite at lambda " + lambda_text(lambda) +
                     " (leading minor " + std::to_string(failed) + "); raise ease.lambda");
  // (G + lambda I) P = I, checked on the given columns: P is symmetric, so row j of A P is
  // A[:, j]^T P = (P A[:, j])^T.
  if (!cols.empty()) {
    auto index = torch::tensor(cols, torch::kLong);
    auto r = a.matmul(a_columns.to(a.options())).to(torch::kFloat64).cpu();
    r.index_put_({index, torch::arange(index.size(0))}, r.index({index, torch::arange(index.size(0))}) - 1.0);
    const double residual = r.abs().max().item<double>();
    if (!(residual < residual_tolerance(a.scalar_type()) * std::max(1.0, max_diag / lambda)))
      throw InputError("EASE: the inverse of G + lambda I failed its residual check (" + std::to_string(residual) +
                       ") at lambda " + lambda_text(lambda) + "; G is too ill-conditioned: raise ease.lambda" +
                       (a.scalar_type() == torch::kFloat32 ? " or set ease.precision: float64" : ""));
  }
  torch::NoGradGuard guard;
  auto d = a.diagonal().clone();
  a.div_(d.neg().unsqueeze(0));  // column j divided by -P_jj
  a.diagonal().zero_();
}

torch::Tensor ease_weights(const torch::Tensor& gram, double lambda) {
  auto a = gram.clone().contiguous();
  a.diagonal().add_(lambda);
  const auto cols = spread_columns(a.size(0));
  auto a_columns = a.index_select(1, torch::tensor(cols, torch::kLong).to(a.device())).to(torch::kFloat64).cpu();
  ease_weights_in_place(a, lambda, a_columns, cols, at::get_num_threads());
  return a;
}

double ease_fit_bytes(std::int64_t items, const std::string& precision, const torch::Device& device) {
  const int element = precision == "float32" ? 4 : 8;
  // Host: G in the working precision, inverted in place by LAPACK; it becomes B (Note [In-place
  // SPD inverse]). Without LAPACK the torch route holds two more matrices for a moment.
  return gram_bytes(items, element) * (1 + (device.is_cuda() ? 0 : spd_inverse_extra_buffers(device))) +
         gram_bytes(items, 8) / 100;
}

EASEModel::EASEModel(const EASEConfig& c, const ModelContext& ctx)
    : ClosedFormModel("EASE"),
      lambdas_(c.lambda),
      items_(ctx.items),
      device_(ctx.device),
      dtype_(c.precision == "float32" ? torch::kFloat32 : torch::kFloat64) {
  const double need = ease_fit_bytes(items_, c.precision, device_);
  const double limit = gram_memory_limit_bytes(c.memory_limit_gb, ctx.local_ranks);
  if (limit > 0 && need > limit)
    throw InputError("ease: " + std::to_string(items_) + " items need about " + std::to_string(need / 1e9) +
                     " GB of host memory per rank (G and B, " + c.precision + ", solved by " +
                     spd_inverse_method(device_) + "), above the limit of " + std::to_string(limit / 1e9) +
                     " GB (ease.memory_limit_gb; 0 means 80% of this node's memory shared by its " +
                     std::to_string(ctx.local_ranks) + " rank(s))" +
                     (c.precision == "float64" ? "; ease.precision: float32 halves it" : "") +
                     (ctx.local_ranks > 1 ? "; fewer ranks per node divide it by fewer" : ""));
  b_ = module_->register_buffer("B", torch::zeros({0}, torch::TensorOptions().dtype(dtype_).device(device_)));
}

std::string EASEModel::fit(int candidate, const FitContext& ctx) {
  const double lambda = lambdas_.at(static_cast<size_t>(candidate));
  torch::NoGradGuard guard;
  b_.set_(torch::zeros({0}, b_.options()));  // the previous candidate's B goes before G comes
  // G is recomputed for every lambda rather than kept: the sparse sums cost little next to the
  // n^3 solve, and keeping G would double the peak memory.
  const torch::Device staging = ctx.comm.backend() == "nccl" ? device_ : torch::Device(torch::kCPU);
  torch::Tensor a = distributed_gram(ctx.train, ctx.comm, ctx.threads, dtype_, staging);
  a.diagonal().add_(lambda);
  const auto cols = spread_columns(items_);
  torch::Tensor a_columns = distributed_gram_columns(ctx.train, cols, ctx.comm);
  for (std::size_t j = 0; j < cols.size(); ++j) a_columns[cols[j]][static_cast<std::int64_t>(j)] += lambda;
  if (device_.is_cuda()) a = a.to(device_);
  const auto t0 = std::chrono::steady_clock::now();
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "ease: inverting %lld x %lld (%s, %s) at lambda %s ...\n", static_cast<long long>(items_),
                 static_cast<long long>(items_), dtype_ == torch::kFloat64 ? "float64" : "float32",
                 spd_inverse_method(device_).c_str(), lambda_text(lambda).c_str());
  // Every rank solves the same G (bit-identical after the reduction), so every replica of B is
  // the same without a broadcast.
  ease_weights_in_place(a, lambda, a_columns, cols, ctx.threads);
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "ease: B in %.1f s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  b_.set_(a);
  return fit_name(candidate);
}

std::string EASEModel::fit_name(int candidate) const {
  return "lambda=" + lambda_text(lambdas_.at(static_cast<size_t>(candidate)));
}

torch::Tensor EASEModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  if (b_.dim() != 2) throw std::logic_error("ease: scores before a fit");
  // x_u B: the rows of B at the user's items, weighted by x_u (Note [Sparse input]).
  auto s = sparse_linear(b_, torch::Tensor(), fold_in, fold_in.values.to(b_.scalar_type()));
  return s.to(torch::kFloat32);
}

std::unique_ptr<EASEModel> make_ease(const Config& c, const ModelContext& ctx) {
  return std::make_unique<EASEModel>(c.section<EASEConfig>(), ctx);
}

void EASEConfig::declare(KeyTable& t) {
  t.numbers("lambda", lambda, "lambda", /*positive=*/true,
            "L2 weight, or a list: each value is fitted (the Gram matrix is recomputed for each: cheap next to the "
            "solve), evaluated on validation, and the best is tested and saved (`metrics.jsonl` has one line per "
            "value, `final.json` its `best_fit`)");
  t.text("precision", precision, {"float64", "float32"},
         "`float64` or `float32`: the precision of G, of its inverse and of B. On the host the inverse is taken in "
         "place by LAPACK (potrf/potri), so a fit needs one items x items matrix: 8 x items^2 bytes in float64, 4 x "
         "items^2 in float32 (41k items: 13.4 / 6.7 GB). A float32 G is reduced through the backend's data "
         "collective (NCCL on GPUs)");
  t.num("memory_limit_gb", memory_limit_gb, 0.0, 1e9,
        "refuse a fit needing more host memory per rank than this (the matrix above; without LAPACK in the build, "
        "three of them); 0: 80% of the node's memory divided by the ranks on the node (each holds its own copy)");
}

}  // namespace recvae
