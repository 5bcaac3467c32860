#include "recvae/models/gram.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"

namespace recvae {

// Note [Distributed Gram]
// ~~~~~~~~~~~~~~~~~~~~~~~
// G = X^T X = sum over users of x_u x_u^T, so with users sharded over ranks every rank sums its
// own rows and one all-reduce adds the ranks' parts: a shared-nothing computation, whatever
// the world size. Within a rank the sum runs over sparse rows (cost sum_u n_u^2, never a dense
// X); threads split G's rows into blocks, each thread scans every user row and writes only its
// block, so there are no races and the order of additions per entry (users in row order) is
// the same for any thread count. The reduction goes in slices of bounded size (64 MB by
// default), so that MSD's 41,140^2 matrix does not need a second full-size buffer inside MPI.
// The sums are exact integers for binary data, so the reduced G is the same at every world size.

torch::Tensor local_gram(const CsrMatrix& x, int threads) {
  const std::int64_t n = x.cols;
  auto g = torch::zeros({n, n}, torch::kFloat64);
  double* out = g.data_ptr<double>();
  const std::int64_t blocks = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n));
  const int before = at::get_num_threads();
  at::set_num_threads(std::max(1, threads));
  at::parallel_for(0, blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t lo = n * b / blocks, hi = n * (b + 1) / blocks;  // rows of G this block owns
      for (std::int64_t r = 0; r < x.rows; ++r) {
        const std::int64_t s = x.indptr[r] - x.indptr[0], e = x.indptr[r + 1] - x.indptr[0];
        for (std::int64_t p = s; p < e; ++p) {
          const std::int64_t i = x.indices[p];
          if (i < lo || i >= hi) continue;
          double* row = out + i * n;
          const double xi = x.data[p];
          for (std::int64_t q = s; q < e; ++q) row[x.indices[q]] += xi * x.data[q];
        }
      }
    }
  });
  at::set_num_threads(before);
  return g;
}

void reduce_gram(torch::Tensor& g, Communicator& comm, std::int64_t chunk_bytes) {
  if (g.scalar_type() != torch::kFloat64 || !g.is_contiguous() || g.is_cuda())
    throw std::logic_error("reduce_gram: expects a contiguous float64 host tensor");
  if (comm.size() == 1) return;
  const std::int64_t total = g.numel();
  const std::int64_t chunk = std::max<std::int64_t>(1, chunk_bytes / static_cast<std::int64_t>(sizeof(double)));
  double* p = g.data_ptr<double>();
  for (std::int64_t off = 0; off < total; off += chunk)
    comm.allreduce_sum_host(p + off, static_cast<std::size_t>(std::min(chunk, total - off)));
}

torch::Tensor distributed_gram(const CsrMatrix& rows, Communicator& comm, int threads) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor g = local_gram(rows, threads);
  reduce_gram(g, comm);
  if (comm.rank() == 0)
    std::fprintf(stderr, "gram: %lld x %lld (%.2f GB float64) in %.2f s\n", static_cast<long long>(rows.cols),
                 static_cast<long long>(rows.cols), gram_bytes(rows.cols) / 1e9,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return g;
}

double gram_bytes(std::int64_t items) { return 8.0 * static_cast<double>(items) * static_cast<double>(items); }

}  // namespace recvae
