#include "recvae/models/ease.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/dist/row_gather.h"
#include "recvae/linalg/distributed_spd_inverse.h"
#include "recvae/linalg/gram.h"
#include "recvae/linalg/thread_count.h"
#include "recvae/linalg/spd_inverse.h"
#include "recvae/linalg/sparse_ops.h"
#include "recvae/linalg/user_gram_inverse.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {

// Note [Distributed EASE]
// ~~~~~~~~~~~~~~~~~~~~~~~
// The replicated solve has every rank form and invert the whole G + lambda I, so more ranks
// never let EASE grow past one node's memory. ease.solver: distributed splits the matrix by
// item columns over the ranks in ScaLAPACK's block-cyclic layout on a 1 x N process grid
// (BlockCyclicColumns; blocks of 64 columns dealt out in turn, so the triangular factorisation's
// work stays balanced). A one-row grid is chosen over a square one because it keeps whole columns
// on a rank, and everything after the inverse is then local to a column: B[:, j] = -P[:, j] / P_jj
// needs only P's column j and its diagonal element, and a user's score for item j is x_u B[:, j].
// The price is a less scalable factorisation (each panel is broadcast along one row of N ranks),
// which is what the few ranks that hold a catalogue need.
//   1. G arrives straight in the layout: each rank sums its users' part of a round of columns and
//      a reduce-scatter gives each rank its own (Note [Distributed Gram]); nobody forms all of G.
//   2. p?potrf and p?potri factorise and invert in place; the triangle potri leaves is filled in
//      by p?tran, a round of columns at a time (distributed_spd_inverse.cpp).
//   3. The residual check of the replicated solve is kept: P A[:, cols] summed over the ranks.
//   4. B stays split (module() holds no B: it holds what is replicated); evaluation and
//      recommendations score users on every rank and merge top-k lists (Note [Column-sharded
//      scores]), and model.h5 receives each rank's columns in turn (write_model_export_sharded).
// Per rank this needs about 1/N of the matrix plus 1/16 of that for the Gram's rounds
// (ease_distributed_fit_bytes). auto picks the replicated solve while it fits the memory limit:
// on one node it is faster (LAPACK on the whole matrix, no communication). Candidates, the
// validation grid and checkpoints are those of the replicated solve (Note [Closed-form models]).

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

[[noreturn]] void throw_not_positive_definite(double lambda, std::int64_t minor) {
  throw InputError("EASE: G + lambda I is not positive definite at lambda " + lambda_text(lambda) + " (leading minor " +
                   std::to_string(minor) + "); raise ease.lambda");
}

// `r` = (G + lambda I) P[:, cols] (float64 [items, cols.size()]) must be the identity's columns.
void check_residual(torch::Tensor r, const std::vector<std::int64_t>& cols, double max_diag, double lambda,
                    torch::ScalarType dtype) {
  auto index = torch::tensor(cols, torch::kLong);
  r.index_put_({index, torch::arange(index.size(0))}, r.index({index, torch::arange(index.size(0))}) - 1.0);
  const double residual = r.abs().max().item<double>();
  if (!(residual < residual_tolerance(dtype) * std::max(1.0, max_diag / lambda)))
    throw InputError("EASE: the inverse of G + lambda I failed its residual check (" + std::to_string(residual) +
                     ") at lambda " + lambda_text(lambda) + "; G is too ill-conditioned: raise ease.lambda" +
                     (dtype == torch::kFloat32 ? " or set ease.precision: float64" : ""));
}

template <typename T>
void column_scores(const T* b, std::int64_t local, std::int64_t n, const CsrMatrix& x, float* out, int threads) {
  const ThreadCount thread_count(threads);
  // One column of B (a contiguous row of the local block) at a time, against every user of the
  // batch: the column stays in cache while the users' few items are read from it.
  at::parallel_for(0, local, 8, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) {
      const T* bc = b + c * n;
      for (std::int64_t u = 0; u < x.rows; ++u) {
        T acc = 0;
        for (std::int64_t p = x.indptr[u]; p < x.indptr[u + 1]; ++p)
          acc += static_cast<T>(x.data[p]) * bc[x.indices[p]];
        out[u * local + c] = static_cast<float>(acc);
      }
    }
  });
}

// P = (G + lambda I)^-1 in `a` becomes B, after the residual check on the columns `cols` of
// G + lambda I (`a_columns`); `max_diag` is max_i (G_ii + lambda).
void weights_from_inverse(torch::Tensor& a, double lambda, const torch::Tensor& a_columns,
                          const std::vector<std::int64_t>& cols, double max_diag) {
  // (G + lambda I) P = I, checked on the given columns: P is symmetric, so row j of A P is
  // A[:, j]^T P = (P A[:, j])^T.
  if (!cols.empty())
    check_residual(a.matmul(a_columns.to(a.options())).to(torch::kFloat64).cpu(), cols, max_diag, lambda,
                   a.scalar_type());
  torch::NoGradGuard guard;
  auto d = a.diagonal().clone();
  a.div_(d.neg().unsqueeze(0));  // column j divided by -P_jj
  a.diagonal().zero_();
}

}  // namespace

void ease_weights_in_place(torch::Tensor& a, double lambda, const torch::Tensor& a_columns,
                           const std::vector<std::int64_t>& cols, int threads) {
  const double max_diag = a.diagonal().max().item<double>();
  const std::int64_t failed = invert_spd(a, threads);
  if (failed != 0) throw_not_positive_definite(lambda, failed);
  weights_from_inverse(a, lambda, a_columns, cols, max_diag);
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

double ease_distributed_fit_bytes(std::int64_t items, const std::string& precision, int ranks) {
  const int element = precision == "float32" ? 4 : 8;
  const std::int64_t block = BlockCyclicColumns::default_block(items, ranks);
  const BlockCyclicColumns rank0(items, block, ranks, 0);  // rank 0 holds the most columns
  const double share = static_cast<double>(rank0.local_columns()) * static_cast<double>(items) * element;
  // The share itself, the Gram's round panel (1/16 of it, Note [Distributed Gram]) and a short
  // round's receive buffer, ScaLAPACK's and the transpose's column blocks, and the residual check.
  return share * (1.0 + 1.0 / 16 + 1.0 / (16.0 * ranks)) + 4.0 * block * items * element + gram_bytes(items, 8) / 100;
}

double ease_dual_fit_bytes(std::int64_t users, std::int64_t items, const std::string& precision) {
  const int element = precision == "float32" ? 4 : 8;
  return inverse_through_user_gram_bytes(users, items, element) + gram_bytes(items, 8) / 100;
}

EASEModel::EASEModel(const EASEConfig& c, const ModelContext& ctx)
    : ClosedFormModel("EASE"),
      lambdas_(c.lambda),
      items_(ctx.items),
      device_(ctx.device),
      dtype_(c.precision == "float32" ? torch::kFloat32 : torch::kFloat64) {
  // Note [Distributed EASE]: which solver runs.
  const double replicated = ease_fit_bytes(items_, c.precision, device_);
  const double split = ease_distributed_fit_bytes(items_, c.precision, ctx.world_size);
  const double limit = gram_memory_limit_bytes(c.memory_limit_gb, ctx.local_ranks);
  const bool fits = limit <= 0 || replicated <= limit, split_fits = limit <= 0 || split <= limit;
  const bool can_split = scalapack_available() && ctx.world_size > 1;
  const auto gb = [](double bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", bytes / 1e9);
    return std::string(text);
  };
  const std::string limit_text = "the limit of " + gb(limit) +
                                 " GB (ease.memory_limit_gb; 0 means 80% of this node's memory shared by its " +
                                 std::to_string(ctx.local_ranks) + " rank(s))";
  const std::string split_route =
      !scalapack_available()
          ? "; the distributed solver (ease.solver: distributed, 1/N of the matrix per rank) needs a build with "
            "ScaLAPACK (libscalapack-openmpi-dev)"
      : ctx.world_size > 1 ? "; ease.solver: distributed splits it over the " + std::to_string(ctx.world_size) +
                                 " ranks (about " + gb(split) + " GB per rank)"
                           : "; ease.solver: distributed on N ranks needs about 1/N of it per rank (more ranks, "
                             "more nodes)";
  bool distributed = c.solver == "distributed" || (c.solver == "auto" && !fits && can_split);
  // Note [Inverse through the users' Gram]: with at most 4 training users for every 5 items the
  // users' Gram matrix is the cheaper inverse ((5/4)^3 = 2 times less work, more as users get fewer).
  const double dual = ease_dual_fit_bytes(ctx.train_users, items_, c.precision);
  const bool dual_fits = limit <= 0 || dual <= limit;
  const bool few_users = ctx.train_users > 0 && ctx.train_users * 5 <= items_ * 4;
  dual_ = c.solver == "dual" || (c.solver == "auto" && !distributed && few_users && dual_fits && !device_.is_cuda());
  if (c.solver == "dual" && !dual_fits)
    throw InputError("ease: solver dual on " + std::to_string(ctx.train_users) + " training users and " +
                     std::to_string(items_) + " items needs about " + gb(dual) +
                     " GB of host memory per rank (the users' and the items' matrices, " + c.precision + "), above " +
                     limit_text + (fits ? "; ease.solver: replicated needs about " + gb(replicated) + " GB" : ""));
  if (c.solver == "distributed" && !scalapack_available())
    throw InputError(
        "ease.solver: distributed needs ScaLAPACK, which this build lacks (install "
        "libscalapack-openmpi-dev and rebuild; CMake option RECVAE_WITH_SCALAPACK)");
  if (!distributed && !dual_ && !fits)
    throw InputError(
        "ease: " + std::to_string(items_) + " items need about " + gb(replicated) +
        " GB of host memory per rank (G and B, " + c.precision + ", solved by " + spd_inverse_method(device_) +
        "), above " + limit_text + (c.precision == "float64" ? "; ease.precision: float32 halves it" : "") +
        (ctx.local_ranks > 1 && c.solver != "auto" ? "; fewer ranks per node divide it by fewer" : "") + split_route);
  if (distributed && !split_fits)
    throw InputError("ease: " + std::to_string(items_) + " items split over " + std::to_string(ctx.world_size) +
                     " rank(s) need about " + gb(split) + " GB of host memory per rank (" + c.precision + "), above " +
                     limit_text + "; more ranks (on more nodes) divide it" +
                     (c.precision == "float64" ? ", ease.precision: float32 halves it" : ""));
  if (distributed) {
    layout_ = std::make_unique<BlockCyclicColumns>(items_, BlockCyclicColumns::default_block(items_, ctx.world_size),
                                                   ctx.world_size, ctx.rank);
    if (layout_->local_columns() * items_ > kScalapackMaxLocalElements)
      throw InputError("ease: " + std::to_string(layout_->local_columns()) + " of " + std::to_string(items_) +
                       " columns on one rank exceed ScaLAPACK's 32-bit indices; use more ranks");
    local_items_ = layout_->global_columns();
    if (ctx.rank == 0)
      std::fprintf(stderr, "ease: solver distributed: B split by item columns over %d rank(s), about %s GB per rank\n",
                   ctx.world_size, gb(split).c_str());
  }
  if (dual_ && ctx.rank == 0)
    std::fprintf(stderr,
                 "ease: solver dual: %lld training users for %lld items: the inverse is taken through the users' "
                 "%lld x %lld Gram matrix, about %s GB per rank\n",
                 static_cast<long long>(ctx.train_users), static_cast<long long>(items_),
                 static_cast<long long>(ctx.train_users), static_cast<long long>(ctx.train_users), gb(dual).c_str());
  b_ = module_->register_buffer("B", torch::zeros({0}, torch::TensorOptions().dtype(dtype_).device(device_)));
}

void EASEModel::release_fit() {
  ClosedFormModel::release_fit();
  b_local_ = torch::Tensor();
}

void EASEModel::fit_distributed(double lambda, const FitContext& ctx) {
  b_local_ = torch::Tensor();  // the previous candidate's B goes before G comes
  const torch::Device staging = ctx.comm.backend() == "nccl" ? device_ : torch::Device(torch::kCPU);
  torch::Tensor a = distributed_gram_block_cyclic(ctx.train, *layout_, ctx.comm, ctx.threads, dtype_, staging);
  const auto cols = spread_columns(items_);
  torch::Tensor a_columns = distributed_gram_columns(ctx.train, cols, ctx.comm);
  for (std::size_t j = 0; j < cols.size(); ++j) a_columns[cols[j]][static_cast<std::int64_t>(j)] += lambda;
  const std::int64_t local = layout_->local_columns();
  const auto rows = torch::arange(local, torch::kLong);
  const auto at_diagonal = torch::tensor(local_items_, torch::kLong);  // A[c, local_items_[c]]: the diagonal
  const torch::Tensor diagonal = a.index({rows, at_diagonal}) + lambda;
  a.index_put_({rows, at_diagonal}, diagonal);
  double max_diag = local > 0 ? diagonal.max().item<double>() : 0.0;
  for (double d : allgather_host(ctx.comm, std::vector<double>{max_diag})) max_diag = std::max(max_diag, d);
  const auto t0 = std::chrono::steady_clock::now();
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "ease: inverting %lld x %lld (%s, ScaLAPACK over %d rank(s)) at lambda %s ...\n",
                 static_cast<long long>(items_), static_cast<long long>(items_),
                 dtype_ == torch::kFloat64 ? "float64" : "float32", ctx.comm.size(), lambda_text(lambda).c_str());
  const std::int64_t failed = invert_spd_distributed(a, *layout_, ctx.comm, ctx.threads);
  if (failed != 0) throw_not_positive_definite(lambda, failed);
  // P is symmetric, so the local rows of the block are P's columns as well as its rows:
  // P A[:, cols] = sum over local c of P[:, c] A[c, cols], summed over the ranks.
  torch::Tensor r =
      a.t().matmul(a_columns.index_select(0, at_diagonal).to(a.scalar_type())).to(torch::kFloat64).contiguous();
  ctx.comm.allreduce_sum_host(r.data_ptr<double>(), static_cast<std::size_t>(r.numel()));
  check_residual(r, cols, max_diag, lambda, dtype_);
  // Column j of B is -P[:, j] / P_jj with a zero diagonal: each rank needs only its own columns.
  auto d = a.index({rows, at_diagonal}).unsqueeze(1);
  a.div_(d.neg());
  a.index_put_({rows, at_diagonal}, torch::zeros({local}, a.options()));
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "ease: B in %.1f s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  b_local_ = a;
}

torch::Tensor EASEModel::local_scores(const CsrMatrix& rows, int threads) {
  if (!b_local_.defined()) throw std::logic_error("ease: scores before a fit");
  auto out = torch::empty({rows.rows, static_cast<std::int64_t>(local_items_.size())}, torch::kFloat32);
  if (b_local_.scalar_type() == torch::kFloat64)
    column_scores(b_local_.data_ptr<double>(), out.size(1), items_, rows, out.data_ptr<float>(), threads);
  else
    column_scores(b_local_.data_ptr<float>(), out.size(1), items_, rows, out.data_ptr<float>(), threads);
  return out;
}

void EASEModel::fit_dual(double lambda, const FitContext& ctx) {
  b_.set_(torch::zeros({0}, b_.options()));  // the previous candidate's B goes before K comes
  const CsrMatrix all = allgather_rows(ctx.train, ctx.comm);
  const auto cols = spread_columns(items_);
  torch::Tensor a_columns = distributed_gram_columns(ctx.train, cols, ctx.comm);
  for (std::size_t j = 0; j < cols.size(); ++j) a_columns[cols[j]][static_cast<std::int64_t>(j)] += lambda;
  std::vector<double> diagonal(static_cast<std::size_t>(items_), 0.0);  // G_ii
  for (std::int64_t q = 0; q < all.nnz(); ++q)
    diagonal[static_cast<std::size_t>(all.indices[q])] += static_cast<double>(all.data[q]) * all.data[q];
  const double max_diag = (diagonal.empty() ? 0.0 : *std::max_element(diagonal.begin(), diagonal.end())) + lambda;
  const auto t0 = std::chrono::steady_clock::now();
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "ease: inverting the users' %lld x %lld Gram matrix (%s, %s) at lambda %s ...\n",
                 static_cast<long long>(all.rows), static_cast<long long>(all.rows),
                 dtype_ == torch::kFloat64 ? "float64" : "float32", spd_inverse_method(torch::kCPU).c_str(),
                 lambda_text(lambda).c_str());
  // Every rank gathers the same rows in the same order and solves the same system, so every
  // replica of B is the same without a broadcast.
  torch::Tensor p;
  UserGramInverseTimes times;
  const std::int64_t failed = inverse_through_user_gram(all, lambda, dtype_, ctx.threads, p, &times);
  if (failed != 0) throw_not_positive_definite(lambda, failed);
  weights_from_inverse(p, lambda, a_columns, cols, max_diag);
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "ease: B in %.1f s (users' Gram %.1f s, its inverse %.1f s, items' inverse from it %.1f s)\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), times.gram,
                 times.inverse, times.fill);
  b_.set_(device_.is_cuda() ? p.to(device_) : p);
}

std::string EASEModel::fit(int candidate, const FitContext& ctx) {
  const double lambda = lambdas_.at(static_cast<size_t>(candidate));
  torch::NoGradGuard guard;
  if (layout_) {
    fit_distributed(lambda, ctx);
    return fit_name(candidate);
  }
  if (dual_) {
    fit_dual(lambda, ctx);
    return fit_name(candidate);
  }
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
  if (b_.dim() != 2)
    throw std::logic_error(layout_ ? "ease: B is split over the ranks (column_shards())" : "ease: scores before a fit");
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
  t.text("solver", solver, {"auto", "replicated", "distributed", "dual"},
         "`replicated`: every rank forms and inverts the whole items x items matrix (fastest while it fits); "
         "`distributed`: ScaLAPACK factorises and inverts it split by item columns over the ranks (block-cyclic, "
         "about 1/N of it per rank), B stays split, and held-out users are scored by every rank for its items with "
         "the top-k lists merged (Note [Distributed EASE]); `dual`: every rank inverts the training users' users x "
         "users Gram matrix instead and forms the items x items inverse from it (Woodbury; on the host, both "
         "matrices at once), the cheaper solve when there are fewer training users than items (Note [Inverse through "
         "the users' Gram]); `auto`: on the host, dual when there are at most 4 training users for every 5 items and "
         "it fits, else replicated while it fits in `ease.memory_limit_gb`, else distributed (builds with "
         "ScaLAPACK, more than one rank)");
  t.num("memory_limit_gb", memory_limit_gb, 0.0, 1e9,
        "refuse a fit needing more host memory per rank than this (the matrix above; without LAPACK in the build, "
        "three of them; split by `ease.solver: distributed`, about 1/N of it); 0: 80% of the node's memory divided by "
        "the ranks on the node");
}

}  // namespace recvae
