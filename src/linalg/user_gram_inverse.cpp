#include "recvae/linalg/user_gram_inverse.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <vector>

#include "recvae/data/csr.h"
#include "recvae/linalg/gram.h"
#include "recvae/linalg/spd_inverse.h"
#include "recvae/linalg/thread_count.h"

// Note [Inverse through the users' Gram]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// EASE's P = (G + lambda I)^-1 with G = X^T X costs items^3: 41k items (Gowalla) is 20 minutes on
// two cores. G has rank at most the number of training users U, and the Woodbury identity
//     (X^T X + lambda I)^-1 = (I - X^T (lambda I + X X^T)^-1 X) / lambda
// moves the cubic work onto the users' Gram matrix X X^T (U x U): 24k training users against
// 41k items is (41/24)^3 = 5 times less. What is left is sparse: with K = (lambda I + X X^T)^-1,
//   1. row i of M = X^T K is the sum of K's rows at item i's users, weighted by their values
//      (nnz(X) x U multiply-adds in all, K streamed from memory);
//   2. P[i, j] = ([i == j] - M[i, :] X[:, j]) / lambda reads M's row at item j's users
//      (nnz(X) per row of P: nnz(X) x items / 2, as only j >= i is computed and then mirrored,
//      which also makes P exactly symmetric).
// M is never stored: each thread keeps one row of it. Rows are taken in pairs (i, items - 1 - i)
// so that the triangle's work is even over the threads. Both steps are sums in a fixed order:
// they add nothing that depends on the thread count (LAPACK's inverse of K may).
// Accuracy: for an item whose G_ii is large against lambda, P_ii is a difference of two numbers
// close to 1/lambda, and its relative error grows like G_ii / lambda times the precision's; the
// residual check of the EASE fit (ease.cpp) bounds the result as it bounds the direct solve's.

namespace recvae {

namespace {

template <typename T>
void fill_inverse(const CsrMatrix& xt, const T* k, std::int64_t users, double lambda, T* p, int threads) {
  const std::int64_t items = xt.rows;
  const T inv_lambda = static_cast<T>(1.0 / lambda);
  const ThreadCount thread_count(threads);
  auto one_row = [&](std::int64_t i, std::vector<T>& m) {
    std::fill(m.begin(), m.end(), T(0));
    for (std::int64_t q = xt.indptr[i]; q < xt.indptr[i + 1]; ++q) {
      const T w = static_cast<T>(xt.data[q]);
      const T* ku = k + static_cast<std::int64_t>(xt.indices[q]) * users;
      for (std::int64_t v = 0; v < users; ++v) m[v] += w * ku[v];
    }
    T* pi = p + i * items;
    for (std::int64_t j = i; j < items; ++j) {
      T acc = 0;
      for (std::int64_t q = xt.indptr[j]; q < xt.indptr[j + 1]; ++q)
        acc += static_cast<T>(xt.data[q]) * m[xt.indices[q]];
      pi[j] = -acc * inv_lambda;
    }
    pi[i] += inv_lambda;
  };
  at::parallel_for(0, (items + 1) / 2, 1, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<T> m(static_cast<std::size_t>(users));
    for (std::int64_t r = r0; r < r1; ++r) {
      one_row(r, m);
      if (items - 1 - r != r) one_row(items - 1 - r, m);
    }
  });
}

}  // namespace

std::int64_t inverse_through_user_gram(const CsrMatrix& x, double lambda, torch::ScalarType dtype, int threads,
                                       torch::Tensor& p, UserGramInverseTimes* times) {
  UserGramInverseTimes local;
  UserGramInverseTimes& t = times ? *times : local;
  auto lap = [last = std::chrono::steady_clock::now()]() mutable {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    last = now;
    return seconds;
  };
  const CsrMatrix xt = x.transposed();               // item-major: the users of each item
  torch::Tensor k = local_gram(xt, threads, dtype);  // X X^T, [users, users]
  k.diagonal().add_(lambda);
  t.gram = lap();
  const std::int64_t failed = invert_spd(k, threads);
  t.inverse = lap();
  if (failed != 0) return failed;
  p = torch::empty({x.cols, x.cols}, torch::TensorOptions().dtype(dtype));
  if (dtype == torch::kFloat64)
    fill_inverse(xt, k.data_ptr<double>(), x.rows, lambda, p.data_ptr<double>(), threads);
  else
    fill_inverse(xt, k.data_ptr<float>(), x.rows, lambda, p.data_ptr<float>(), threads);
  k = torch::Tensor();
  mirror_upper_to_lower(p, threads);
  t.fill = lap();
  return 0;
}

double inverse_through_user_gram_bytes(std::int64_t users, std::int64_t items, int element_bytes) {
  // K and P live together while P is filled; each thread's row of M is small next to them.
  return gram_bytes(users, element_bytes) + gram_bytes(items, element_bytes);
}

}  // namespace recvae
