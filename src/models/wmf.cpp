#include "recvae/models/wmf.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <vector>

#include <ATen/Parallel.h>

#include "recvae/data/h5_dataset.h"
#include "recvae/data/sharding.h"
#include "recvae/dist/comm.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

#ifdef RECVAE_HAVE_LAPACK
#include <atomic>
#include <limits>
#include "recvae/linalg/lapack.h"
#endif

namespace recvae {

// Note [Distributed ALS]
// ~~~~~~~~~~~~~~~~~~~~~~
// One epoch is a user half-step then an item half-step, each the exact minimiser of the whole
// objective in its block (so the objective never rises). The Gramian trick makes the
// unobserved pairs cost one k x k matrix, alpha_0 F^T F, shared by every row's system, so a row
// costs its own observations plus one k x k Cholesky (PMF: not even that, Note [Rows that share
// one system]). Distribution follows Spark's block ALS:
//  * user step: each rank solves its own user shard (the rows it already holds) against the
//    replicated item factors; nothing is exchanged to solve.
//  * item step: every rank needs the users of the items it solves, so the user factors are
//    all-gathered (users x k floats); each rank then solves a contiguous item range (balanced
//    by non-zeros) from the item-major (CSC) copy of train in the split file, read by range,
//    never transposed at run time; the item factors are all-gathered to stay replicated.
// Both gathers are broadcasts of each rank's slice through the backend's data collective, so
// on GPUs they run over NCCL. On GPUs (and without LAPACK) the solves are batched Cholesky
// factorisations, rows sorted by length so that padding stays small; on the CPU each row is solved
// in its thread's own buffer (Note [Row solves on the host]). Every row's system depends only on replicated
// factors and the row's own observations, so the factors are the same at every world size up to
// the summation order inside the batched products (1e-6 relative). Checkpoints hold the item
// factors only: the user factors are a function of them, recomputed by the next user step.

double ALSObjective::row_regularization(std::int64_t n, std::int64_t others) const {
  return regularization *
         std::pow(static_cast<double>(n) + unobserved_weight * static_cast<double>(others), regularization_exp);
}

ALSObjective::ObservationWeight ALSObjective::observation_weight(float value) const {
  if (!observed_in_gram) return {0.f, 1.f};
  const float confidence = static_cast<float>(1.0 + alpha * value);
  return {std::sqrt(confidence), confidence};
}

ALSObjective wmf_objective(const WMFConfig& c) {
  ALSObjective o;
  o.dim = c.dim;
  o.regularization = c.regularization;
  o.regularization_exp = c.regularization_exp;
  o.unobserved_weight = c.unobserved_weight;
  o.alpha = c.alpha;
  o.init_stddev = c.init_stddev;
  o.cg_steps = c.solver == "cg" ? static_cast<int>(c.cg_steps) : 0;
  return o;
}

ALSObjective pmf_objective(const PMFConfig& c) {
  ALSObjective o;
  o.dim = c.dim;
  o.regularization = c.regularization;
  o.regularization_exp = 0;
  o.unobserved_weight = 1;
  o.init_stddev = c.init_stddev;
  o.observed_in_gram = false;
  return o;
}

namespace {

// What every CPU row solver reads: the factors and alpha_0 G in float, contiguous, and the offset
// of the first row's observations.
struct RowSystemInputs {
  torch::Tensor f, base;
  const float* fp;
  const float* bp;
  std::int64_t base_ptr;
  RowSystemInputs(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x, const ALSObjective& o)
      : f(factors.to(torch::kFloat32).contiguous()),
        base((gram.to(torch::kFloat32) * o.unobserved_weight).contiguous()),
        fp(f.data_ptr<float>()),
        bp(base.data_ptr<float>()),
        base_ptr(x.indptr[0]) {}
};

}  // namespace

#ifdef RECVAE_HAVE_LAPACK
namespace {

// Note [Row solves on the host]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// On the CPU every row's k x k system is built and solved in a buffer of its own thread (256 KB
// at k 256, so it stays in cache): copy alpha_0 F^T F, add the row's observations by one syrk,
// factorise and solve in place (potrf, potrs). The batched torch route below materialises
// rows x k x k floats per block and pays a batched solve for a single right-hand side; on the
// ML-20M shape it took 2.8x the time of google-research's ials_main (docs/performance.md).
torch::Tensor als_solve_rows_host(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                                  const ALSObjective& o, std::int64_t others, std::int64_t first_row,
                                  const char* what) {
  const std::int64_t rows = x.rows, k = factors.size(1);
  auto out = torch::zeros({rows, k}, torch::kFloat32);
  const RowSystemInputs in(factors, gram, x, o);
  const float *fp = in.fp, *bp = in.bp;
  float* op = out.data_ptr<float>();
  const std::int64_t base_ptr = in.base_ptr;
  std::atomic<std::int64_t> failed{std::numeric_limits<std::int64_t>::max()};
  at::parallel_for(0, rows, 16, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> a(static_cast<size_t>(k * k)), obs, rhs(static_cast<size_t>(k));
    const int kk = static_cast<int>(k), one = 1;
    for (std::int64_t r = lo; r < hi; ++r) {
      std::copy(bp, bp + k * k, a.begin());
      std::fill(rhs.begin(), rhs.end(), 0.f);
      const std::int64_t b = x.indptr[r] - base_ptr, e = x.indptr[r + 1] - base_ptr, len = e - b;
      if (o.observed_in_gram && len > 0) obs.resize(static_cast<size_t>(len * k));
      for (std::int64_t p = b, j = 0; p < e; ++p, ++j) {
        const auto w = o.observation_weight(x.data[p]);
        const float* row = fp + static_cast<std::int64_t>(x.indices[p]) * k;
        for (std::int64_t c = 0; c < k; ++c) rhs[c] += w.rhs * row[c];
        if (o.observed_in_gram)
          for (std::int64_t c = 0; c < k; ++c) obs[j * k + c] = w.gram * row[c];
      }
      if (o.observed_in_gram && len > 0) {
        // obs is len x k row-major, i.e. k x len column-major: a += obs^T obs (lower triangle).
        const int n_obs = static_cast<int>(len);
        const float alpha = 1.f, beta = 1.f;
        ssyrk_("L", "N", &kk, &n_obs, &alpha, obs.data(), &kk, &beta, a.data(), &kk);
      }
      const float reg = static_cast<float>(o.row_regularization(x.row_nnz(r), others));
      for (std::int64_t c = 0; c < k; ++c) a[c * k + c] += reg;
      int info = 0;
      spotrf_("L", &kk, a.data(), &kk, &info);
      if (info != 0) {
        std::int64_t seen = failed.load();
        while (r < seen && !failed.compare_exchange_weak(seen, r)) {
        }
        continue;
      }
      spotrs_("L", &kk, &one, a.data(), &kk, rhs.data(), &kk, &info);
      std::copy(rhs.begin(), rhs.end(), op + r * k);
    }
  });
  if (failed.load() != std::numeric_limits<std::int64_t>::max())
    throw InputError(std::string(what) + ": the system of row " + std::to_string(first_row + failed.load()) +
                     " is not positive definite; raise the regularization");
  if (!torch::isfinite(out).all().item<bool>())
    throw InputError(std::string(what) + ": non-finite factors from the row solves; raise the regularization");
  return out.to(factors.scalar_type());
}

}  // namespace
#endif

namespace {

// Note [Conjugate-gradient rows]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// wmf.solver: cg (as implicit's ALS and Rendle et al.'s iALS++ do): instead of forming and
// factorising each row's k x k system (k^3/3 + n k^2 flops), a few conjugate-gradient steps from
// the row's current value, each a product with the system matrix that never forms it:
// alpha_0 G p + sum_j a_j (f_j . p) f_j + lambda_r p, that is k^2 + 2 n k flops. Warm-started
// from the previous half-step, three steps track the exact solution closely after the first
// epochs (docs/performance.md has the figures). Plain loops, no BLAS call: the row solves scale
// with threads, which the per-row LAPACK calls did not (OpenBLAS serialises them).
torch::Tensor als_cg_rows(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                          const ALSObjective& o, std::int64_t others, const torch::Tensor& start) {
  const std::int64_t rows = x.rows, k = factors.size(1);
  auto out = start.defined() && start.size(0) == rows ? start.to(torch::kFloat32).contiguous().clone()
                                                      : torch::zeros({rows, k}, torch::kFloat32);
  const RowSystemInputs in(factors, gram, x, o);
  const float *fp = in.fp, *bp = in.bp;
  float* op = out.data_ptr<float>();
  const std::int64_t base_ptr = in.base_ptr;
  at::parallel_for(0, rows, 16, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> r(static_cast<size_t>(k)), p(static_cast<size_t>(k)), ap(static_cast<size_t>(k));
    for (std::int64_t row = lo; row < hi; ++row) {
      float* w = op + row * k;
      const std::int64_t b = x.indptr[row] - base_ptr, e = x.indptr[row + 1] - base_ptr;
      const float reg = static_cast<float>(o.row_regularization(x.row_nnz(row), others));
      // ap = A v for the row's system matrix A.
      auto times_a = [&](const float* v) {
        for (std::int64_t i = 0; i < k; ++i) {
          const float* gi = bp + i * k;
          float s = 0.f;
#pragma omp simd reduction(+ : s)
          for (std::int64_t j = 0; j < k; ++j) s += gi[j] * v[j];
          ap[static_cast<size_t>(i)] = s + reg * v[i];
        }
        if (!o.observed_in_gram) return;
        for (std::int64_t q = b; q < e; ++q) {
          const auto wt = o.observation_weight(x.data[q]);
          const float* fj = fp + static_cast<std::int64_t>(x.indices[q]) * k;
          float dot = 0.f;
#pragma omp simd reduction(+ : dot)
          for (std::int64_t c = 0; c < k; ++c) dot += fj[c] * v[c];
          const float scale = wt.gram * wt.gram * dot;
          for (std::int64_t c = 0; c < k; ++c) ap[static_cast<size_t>(c)] += scale * fj[c];
        }
      };
      // r = b - A w
      times_a(w);
      for (std::int64_t c = 0; c < k; ++c) r[static_cast<size_t>(c)] = -ap[static_cast<size_t>(c)];
      for (std::int64_t q = b; q < e; ++q) {
        const float scale = o.observation_weight(x.data[q]).rhs;
        const float* fj = fp + static_cast<std::int64_t>(x.indices[q]) * k;
        for (std::int64_t c = 0; c < k; ++c) r[static_cast<size_t>(c)] += scale * fj[c];
      }
      p = r;
      double rs = 0;
      for (float v : r) rs += static_cast<double>(v) * v;
      for (int step = 0; step < o.cg_steps && rs > 1e-20; ++step) {
        times_a(p.data());
        double pap = 0;
        for (std::int64_t c = 0; c < k; ++c)
          pap += static_cast<double>(p[static_cast<size_t>(c)]) * ap[static_cast<size_t>(c)];
        if (pap <= 0) break;
        const float a = static_cast<float>(rs / pap);
        double rs_new = 0;
        for (std::int64_t c = 0; c < k; ++c) {
          w[c] += a * p[static_cast<size_t>(c)];
          r[static_cast<size_t>(c)] -= a * ap[static_cast<size_t>(c)];
          rs_new += static_cast<double>(r[static_cast<size_t>(c)]) * r[static_cast<size_t>(c)];
        }
        const float beta = static_cast<float>(rs_new / rs);
        for (std::int64_t c = 0; c < k; ++c)
          p[static_cast<size_t>(c)] = r[static_cast<size_t>(c)] + beta * p[static_cast<size_t>(c)];
        rs = rs_new;
      }
    }
  });
  if (!torch::isfinite(out).all().item<bool>())
    throw InputError("non-finite factors from the conjugate-gradient row solves; raise the regularization");
  return out.to(factors.scalar_type());
}

}  // namespace

namespace {

// Note [Rows that share one system]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// PMF counts every entry as one squared error, so no observation enters a row's matrix, and its
// lambda does not depend on the row's count (nu = 0): every row solves (alpha_0 F^T F + lambda I)
// w_r = sum_{j in r} t_rj f_j with the same matrix A. Then W = (X F) A^-1: one sparse product,
// one k x k Cholesky and inverse (in float64: k^3, cheap) and one GEMM of all rows with A^-1 in
// the factors' precision, instead of a factorisation per row (k^3 / 3 flops each; at k 512,
// 2.9 TFLOP a Gowalla epoch). The GEMM, not two triangular solves with every row, because at
// large k the rows x k^2 part is the whole cost, and a GEMM is the fastest way to pay it.
torch::Tensor als_solve_shared_system(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                                      const ALSObjective& o, std::int64_t others, const char* what) {
  const std::int64_t rows = x.rows, k = factors.size(1), base_ptr = x.indptr[0];
  const std::int64_t nnz = x.indptr[rows] - base_ptr;
  auto coords = torch::empty({2, nnz}, torch::kInt64);
  auto weights = torch::empty({nnz}, torch::kFloat32);
  auto* cp = coords.data_ptr<std::int64_t>();
  auto* wp = weights.data_ptr<float>();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t p = x.indptr[r] - base_ptr; p < x.indptr[r + 1] - base_ptr; ++p) {
      cp[p] = r;
      cp[nnz + p] = x.indices[p];
      wp[p] = o.observation_weight(x.data[p]).rhs;
    }
  const auto dev = factors.device();
  const auto f = factors.scalar_type() == torch::kFloat64 ? factors : factors.to(torch::kFloat32);
  const auto xs =
      torch::sparse_coo_tensor(coords.to(dev), weights.to(dev, f.scalar_type()), {rows, factors.size(0)}).coalesce();
  const auto b = torch::mm(xs, f);  // rows x k: sum_{j in r} t_rj f_j
  const auto a = gram.to(torch::kFloat64) * o.unobserved_weight +
                 o.row_regularization(0, others) * torch::eye(k, torch::dtype(torch::kFloat64).device(dev));
  const auto [l, info] = torch::linalg_cholesky_ex(a);
  if (info.item<std::int64_t>() != 0)
    throw InputError(std::string(what) +
                     ": the system that every row shares is not positive definite; raise the "
                     "regularization");
  auto out = b.matmul(torch::cholesky_inverse(l).to(b.scalar_type()));
  if (!torch::isfinite(out).all().item<bool>())
    throw InputError(std::string(what) + ": non-finite factors from the shared solve; raise the regularization");
  return out.to(factors.scalar_type()).contiguous();
}

}  // namespace

torch::Tensor als_solve_rows(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                             const ALSObjective& o, std::int64_t others, std::int64_t first_row, const char* what,
                             const torch::Tensor& start) {
  if (o.rows_share_one_system() && x.rows > 0) {
    torch::NoGradGuard guard;
    return als_solve_shared_system(factors, gram, x, o, others, what);  // Note [Rows that share one system]
  }
  if (o.cg_steps > 0 && factors.device().is_cpu() && x.rows > 0) {
    torch::NoGradGuard guard;
    return als_cg_rows(factors, gram, x, o, others, start);  // Note [Conjugate-gradient rows]
  }
#ifdef RECVAE_HAVE_LAPACK
  const std::int64_t k = factors.size(1);
  if (x.rows > 0 && factors.device().is_cpu() && factors.scalar_type() == torch::kFloat32 &&
      k <= std::numeric_limits<int>::max() / k) {
    torch::NoGradGuard guard;
    return als_solve_rows_host(factors, gram, x, o, others, first_row, what);  // Note [Row solves on the host]
  }
#endif
  return als_solve_rows_batched(factors, gram, x, o, others, first_row, what);
}

torch::Tensor als_solve_rows_batched(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                                     const ALSObjective& o, std::int64_t others, std::int64_t first_row,
                                     const char* what) {
  torch::NoGradGuard guard;
  const std::int64_t rows = x.rows, k = factors.size(1), n = factors.size(0);
  auto out = torch::zeros({rows, k}, factors.options());
  if (rows == 0) return out;
  const std::int64_t base_ptr = x.indptr[0];
  std::vector<std::int64_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return x.row_nnz(a) < x.row_nnz(b); });
  const auto padded = torch::cat({factors, torch::zeros({1, k}, factors.options())});  // row n: padding
  const auto base = gram * o.unobserved_weight;
  constexpr std::int64_t kBudget = std::int64_t(1) << 24, kMaxRows = 1024;  // elements of one padded block
  for (std::int64_t s = 0; s < rows;) {
    std::int64_t e = s + 1;
    while (e < rows && e - s < kMaxRows && (e - s + 1) * std::max<std::int64_t>(1, x.row_nnz(order[e])) * k <= kBudget)
      ++e;
    const std::int64_t batch = e - s, len = std::max<std::int64_t>(1, x.row_nnz(order[e - 1]));
    std::vector<std::int64_t> idx(static_cast<size_t>(batch * len), n), picked(static_cast<size_t>(batch));
    std::vector<float> gram_w(static_cast<size_t>(batch * len), 0.f), rhs_w(static_cast<size_t>(batch * len), 0.f);
    std::vector<float> reg(static_cast<size_t>(batch));
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::int64_t r = order[s + b];
      picked[b] = r;
      reg[b] = static_cast<float>(o.row_regularization(x.row_nnz(r), others));
      for (std::int64_t p = x.indptr[r] - base_ptr, j = 0; p < x.indptr[r + 1] - base_ptr; ++p, ++j) {
        const auto w = o.observation_weight(x.data[p]);
        idx[b * len + j] = x.indices[p];
        gram_w[b * len + j] = w.gram;
        rhs_w[b * len + j] = w.rhs;
      }
    }
    const auto dev = factors.device();
    auto f = padded.index_select(0, torch::tensor(idx, torch::kLong).to(dev)).view({batch, len, k});
    auto a = base.unsqueeze(0).expand({batch, k, k}).clone();
    a.diagonal(0, 1, 2).add_(torch::tensor(reg).to(dev).unsqueeze(1));
    if (o.observed_in_gram) {
      auto fa = f * torch::tensor(gram_w).to(dev).view({batch, len, 1});
      a.baddbmm_(fa.transpose(1, 2), fa);
    }
    auto rhs = (f * torch::tensor(rhs_w).to(dev).view({batch, len, 1})).sum(1);
    torch::Tensor chol, info;
    std::tie(chol, info) = torch::linalg_cholesky_ex(a);
    auto bad = info.ne(0).nonzero().cpu();
    if (bad.size(0) > 0)
      throw InputError(std::string(what) + ": the system of row " +
                       std::to_string(first_row + picked[bad[0][0].item<std::int64_t>()]) +
                       " is not positive definite; raise the regularization");
    auto w = torch::cholesky_solve(rhs.unsqueeze(2), chol).squeeze(2);
    if (!torch::isfinite(w).all().item<bool>())
      throw InputError(std::string(what) + ": non-finite factors from the solve of rows " +
                       std::to_string(first_row + picked[0]) + "..; raise the regularization");
    out.index_copy_(0, torch::tensor(picked, torch::kLong).to(dev), w);
    s = e;
  }
  return out;
}

ALSModel::ALSModel(std::string type, const ALSObjective& o, const ModelContext& ctx)
    : type_(std::move(type)),
      o_(o),
      module_(std::make_shared<torch::nn::Module>(type_)),
      num_items_(ctx.items),
      num_users_(ctx.train_users),
      device_(ctx.device) {
  if (ctx.data == nullptr) throw std::logic_error(type_ + ": the model needs the split file at construction");
  const SplitFile& file = *ctx.data;
  for (int r = 0; r < ctx.world_size; ++r) user_bounds_.push_back(shard_of(file, split::kTrain, r, ctx.world_size).lo);
  user_bounds_.push_back(num_users_);
  if (user_bounds_[ctx.rank] != ctx.local_users_lo || user_bounds_[ctx.rank + 1] != ctx.local_users_hi)
    throw std::logic_error(type_ + ": user shards differ from the trainer's");
  const std::vector<std::int64_t> indptr = file.read_item_indptr(0, num_items_);  // InputError without train_csc
  for (std::int64_t i = 0; i < num_items_; ++i) item_counts_.push_back(indptr[i + 1] - indptr[i]);
  for (int r = 0; r < ctx.world_size; ++r) item_bounds_.push_back(balanced_range(indptr, r, ctx.world_size).lo);
  item_bounds_.push_back(num_items_);
  item_columns_ = file.read_item_columns(item_bounds_[ctx.rank], item_bounds_[ctx.rank + 1]);
  torch::NoGradGuard guard;
  auto init = torch::randn({num_items_, o_.dim}) * (o_.init_stddev / std::sqrt(static_cast<double>(o_.dim)));
  items_ = module_->register_parameter("item_factors", init, /*requires_grad=*/false);
  module_->to(device_);
  items_ = module_->named_parameters()["item_factors"];
  users_ = torch::zeros({ctx.local_users_hi - ctx.local_users_lo, o_.dim}, items_.options());
}

torch::Tensor ALSModel::item_gram() {
  const auto version = items_._version();
  if (!gram_cache_.defined() || version != gram_version_ || gram_cache_.device() != items_.device()) {
    gram_cache_ = items_.t().matmul(items_);
    gram_version_ = version;
  }
  return gram_cache_;
}

torch::Tensor ALSModel::gathered(const torch::Tensor& local, const std::vector<std::int64_t>& bounds, FitContext& ctx) {
  auto full = torch::zeros({bounds.back(), local.size(1)}, local.options());
  const int rank = ctx.comm.rank();
  full.narrow(0, bounds[rank], bounds[rank + 1] - bounds[rank]).copy_(local);
  for (int r = 0; r < ctx.comm.size(); ++r) {
    const std::int64_t count = (bounds[r + 1] - bounds[r]) * local.size(1);
    if (count > 0)
      ctx.comm.broadcast(full.narrow(0, bounds[r], bounds[r + 1] - bounds[r]).data_ptr<float>(),
                         static_cast<std::size_t>(count), r);
  }
  return full;
}

const torch::Tensor& ALSModel::user_step(const FitContext& ctx) {
  users_ = als_solve_rows(items_, item_gram(), ctx.train, o_, num_items_, ctx.first_row, "user step", users_);
  return users_;
}

void ALSModel::item_step(const FitContext& ctx) {
  FitContext c = ctx;
  torch::Tensor all_users = gathered(users_, user_bounds_, c);
  torch::Tensor user_gram = all_users.t().matmul(all_users);
  const int rank = ctx.comm.rank();
  torch::Tensor mine =
      als_solve_rows(all_users, user_gram, item_columns_, o_, num_users_, item_bounds_[rank], "item step",
                     items_.narrow(0, item_bounds_[rank], item_bounds_[rank + 1] - item_bounds_[rank]));
  torch::NoGradGuard guard;
  items_.copy_(gathered(mine, item_bounds_, c));
}

double ALSModel::objective(const FitContext& ctx) {
  torch::NoGradGuard guard;
  const CsrMatrix& x = ctx.train;
  const std::int64_t k = o_.dim;
  // [observed term, user regulariser] over this rank's rows, then U^T U; summed over the ranks.
  std::vector<double> sums(static_cast<size_t>(2 + k * k), 0.0);
  const std::int64_t base = x.indptr[0];
  constexpr std::int64_t kChunk = 1 << 16;  // non-zeros per gather
  for (std::int64_t r0 = 0; r0 < x.rows;) {
    std::int64_t r1 = r0;
    while (r1 < x.rows && (r1 == r0 || x.indptr[r1 + 1] - x.indptr[r0] <= kChunk)) ++r1;
    std::vector<std::int64_t> row, col;
    std::vector<float> val;
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t p = x.indptr[r] - base; p < x.indptr[r + 1] - base; ++p) {
        row.push_back(r);
        col.push_back(x.indices[p]);
        val.push_back(x.data[p]);
      }
    if (!row.empty()) {
      const auto dev = items_.device();
      auto s = (users_.index_select(0, torch::tensor(row).to(dev)) * items_.index_select(0, torch::tensor(col).to(dev)))
                   .sum(1)
                   .to(torch::kFloat64);
      if (o_.observed_in_gram) {
        auto a = 1.0 + o_.alpha * torch::tensor(val).to(dev).to(torch::kFloat64);
        sums[0] += (a * (s - 1).pow(2)).sum().item<double>();
      } else {
        sums[0] += (1 - 2 * s).sum().item<double>();  // (s - 1)^2 - s^2: the rest is in the all-pairs term
      }
    }
    r0 = r1;
  }
  auto norms = users_.to(torch::kFloat64).pow(2).sum(1).cpu().contiguous();
  const double* user_norm = norms.data_ptr<double>();
  for (std::int64_t r = 0; r < x.rows; ++r) sums[1] += o_.row_regularization(x.row_nnz(r), num_items_) * user_norm[r];
  auto ug = users_.to(torch::kFloat64).t().matmul(users_.to(torch::kFloat64)).cpu().contiguous();
  std::copy(ug.data_ptr<double>(), ug.data_ptr<double>() + k * k, sums.begin() + 2);
  ctx.comm.allreduce_sum_host(sums.data(), sums.size());
  auto user_gram = torch::from_blob(sums.data() + 2, {k, k}, torch::kFloat64).clone();
  auto v = items_.to(torch::kFloat64).cpu();
  const double all_pairs = (user_gram * v.t().matmul(v)).sum().item<double>();
  auto item_norms = v.pow(2).sum(1).contiguous();
  const double* item_norm = item_norms.data_ptr<double>();
  double item_reg = 0;
  for (std::int64_t i = 0; i < num_items_; ++i)
    item_reg += o_.row_regularization(item_counts_[i], num_users_) * item_norm[i];
  return sums[0] + o_.unobserved_weight * all_pairs + sums[1] + item_reg;
}

Figures ALSModel::solve_epoch(int epoch, const FitContext& ctx) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  user_step(ctx);
  const auto t1 = Clock::now();
  item_step(ctx);
  const auto t2 = Clock::now();
  const double loss = objective(ctx);
  (void)epoch;
  return {{"objective", loss},
          {"user_step_seconds", std::chrono::duration<double>(t1 - t0).count()},
          {"item_step_seconds", std::chrono::duration<double>(t2 - t1).count()}};
}

torch::Tensor ALSModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  // Fold-in (strong generalisation): one user-step solve per held-out user with the item
  // factors fixed, then scores against every item.
  CsrMatrix x;
  x.rows = fold_in.rows;
  x.cols = num_items_;
  auto offsets = fold_in.offsets.cpu();
  auto cols = fold_in.cols.cpu().to(torch::kInt32);
  auto values = fold_in.values.cpu();
  x.indptr.assign(offsets.data_ptr<std::int64_t>(), offsets.data_ptr<std::int64_t>() + x.rows);
  x.indptr.push_back(cols.numel());
  x.indices.assign(cols.data_ptr<std::int32_t>(), cols.data_ptr<std::int32_t>() + cols.numel());
  x.data.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
  ALSObjective exact = o_;  // a new user has no previous value to start conjugate gradients from
  exact.cg_steps = 0;
  auto w = als_solve_rows(items_, item_gram(), x, exact, num_items_, 0, "fold-in");
  return w.matmul(items_.t());
}

std::vector<std::pair<std::string, std::int64_t>> ALSModel::shape() const {
  return {{"items", num_items_}, {type_ + ".dim", o_.dim}};
}

std::unique_ptr<ALSModel> make_wmf(const Config& c, const ModelContext& ctx) {
  return std::make_unique<ALSModel>("wmf", wmf_objective(c.section<WMFConfig>()), ctx);
}

std::unique_ptr<ALSModel> make_pmf(const Config& c, const ModelContext& ctx) {
  return std::make_unique<ALSModel>("pmf", pmf_objective(c.section<PMFConfig>()), ctx);
}

void WMFConfig::declare(KeyTable& t) {
  t.num("dim", dim, 1, 1 << 16, "embedding width k");
  t.num("regularization", regularization, 0.0, 1e12, "lambda");
  t.num("regularization_exp", regularization_exp, 0.0, 10.0, "nu (0: the same lambda for every row)");
  t.num("unobserved_weight", unobserved_weight, 0.0, 1e12, "alpha_0");
  t.num("alpha", alpha, 0.0, 1e12,
        "confidence of an observed value x: c = 1 + alpha x (count data; 0 for binary data)");
  t.num("init_stddev", init_stddev, 0.0, 1e6, "item factors start as N(0, init_stddev^2 / dim)", /*open_lo=*/true);
  t.text("solver", solver, {"cholesky", "cg"},
         "`cholesky`: every row's system solved exactly; `cg`: `cg_steps` conjugate-gradient steps per row from its "
         "previous value (CPU; GPUs keep the exact solve)");
  t.num("cg_steps", cg_steps, 1, 1000, "conjugate-gradient steps per row and half-step (solver cg)");
}

void PMFConfig::declare(KeyTable& t) {
  t.num("dim", dim, 1, 1 << 16, "embedding width k");
  t.num("regularization", regularization, 0.0, 1e12, "lambda (ratio of the noise and prior variances)");
  t.num("init_stddev", init_stddev, 0.0, 1e6, "item factors start as N(0, init_stddev^2 / dim)", /*open_lo=*/true);
}

}  // namespace recvae
