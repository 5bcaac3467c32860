#include "recvae/linalg/gram.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/linalg/block_cyclic.h"
#include "recvae/linalg/thread_count.h"

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
// G may be summed in float32 (EASE's float32 solve needs nothing wider): integer sums stay
// exact below 2^24 co-occurrences per item pair, so binary data still gives the same G at every
// world size; weighted data loses that bit-for-bit guarantee across world sizes (not across
// thread counts). A float32 G is reduced by the backend's data collective (NCCL on GPUs).
//
// Split over the ranks (EASE's distributed solver, BlockCyclicColumns): no rank forms the whole
// G. The columns go in rounds of whole cycles (ranks x block columns each); in a round every rank
// sums, from its own users, a panel holding the round's columns grouped by the rank that owns
// them (G is symmetric: a column is a row, which is what sum_outer_products writes), and one
// reduce-scatter leaves each rank the sum of its own group, straight in its local columns. A
// round's panel is about 1/16 of a rank's share, so the peak stays near 1/N of G plus that. The
// sums, and so the exactness argument above, are the same as the all-reduce's. float64 has no
// reduce-scatter in the Communicator: its panels are all-reduced and each rank keeps its group.

namespace {

// Rows of G for the items `row_of` maps to a row of `out` (row_of[i] < 0: not wanted; row_of
// empty: every item, row i): out[row_of[i]] += x_ui x_u over the users. Threads split the rows of
// `out` in blocks; each scans every user row and writes only its block, so there are no races and
// each entry receives its additions in user order, whatever the thread count.
template <typename T>
void sum_outer_products(const CsrMatrix& x, T* out, std::int64_t n, std::int64_t out_rows,
                        const std::vector<std::int64_t>& row_of, int threads) {
  const std::int64_t blocks = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, out_rows));
  const ThreadCount thread_count(threads);
  at::parallel_for(0, blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t lo = out_rows * b / blocks, hi = out_rows * (b + 1) / blocks;  // rows this block owns
      for (std::int64_t r = 0; r < x.rows; ++r) {
        const std::int64_t s = x.indptr[r] - x.indptr[0], e = x.indptr[r + 1] - x.indptr[0];
        for (std::int64_t p = s; p < e; ++p) {
          const std::int64_t i = row_of.empty() ? x.indices[p] : row_of[static_cast<size_t>(x.indices[p])];
          if (i < lo || i >= hi) continue;
          T* row = out + i * n;
          const T xi = static_cast<T>(x.data[p]);
          for (std::int64_t q = s; q < e; ++q) row[x.indices[q]] += xi * static_cast<T>(x.data[q]);
        }
      }
    }
  });
}

void sum_outer_products(const CsrMatrix& x, torch::Tensor& out, const std::vector<std::int64_t>& row_of, int threads) {
  if (out.scalar_type() == torch::kFloat64)
    sum_outer_products(x, out.data_ptr<double>(), x.cols, out.size(0), row_of, threads);
  else if (out.scalar_type() == torch::kFloat32)
    sum_outer_products(x, out.data_ptr<float>(), x.cols, out.size(0), row_of, threads);
  else
    throw std::logic_error("gram: float64 or float32 only");
}

}  // namespace

torch::Tensor local_gram(const CsrMatrix& x, int threads, torch::ScalarType dtype) {
  auto g = torch::zeros({x.cols, x.cols}, dtype);
  sum_outer_products(x, g, {}, threads);
  return g;
}

void reduce_gram(torch::Tensor& g, Communicator& comm, std::int64_t chunk_bytes, torch::Device staging) {
  if (!g.is_contiguous() || g.is_cuda() || (g.scalar_type() != torch::kFloat64 && g.scalar_type() != torch::kFloat32))
    throw std::logic_error("reduce_gram: expects a contiguous float64 or float32 host tensor");
  if (comm.size() == 1) return;
  const std::int64_t total = g.numel();
  const std::int64_t chunk = std::max<std::int64_t>(1, chunk_bytes / static_cast<std::int64_t>(g.element_size()));
  if (g.scalar_type() == torch::kFloat64) {
    double* p = g.data_ptr<double>();
    for (std::int64_t off = 0; off < total; off += chunk)
      comm.allreduce_sum_host(p + off, static_cast<std::size_t>(std::min(chunk, total - off)));
    return;
  }
  // float32 takes the data path: on an NCCL job each slice goes through one staging buffer on
  // the GPU, so the reduction runs over NVLink/InfiniBand instead of MPI's host path.
  auto flat = g.view({-1});
  torch::Tensor buffer = staging.is_cuda() ? torch::empty({std::min(chunk, total)}, g.options().device(staging)) : flat;
  for (std::int64_t off = 0; off < total; off += chunk) {
    const std::int64_t len = std::min(chunk, total - off);
    if (!staging.is_cuda()) {
      comm.allreduce_sum(flat.data_ptr<float>() + off, static_cast<std::size_t>(len));
      continue;
    }
    auto slice = buffer.narrow(0, 0, len);
    slice.copy_(flat.narrow(0, off, len));
    comm.allreduce_sum(slice.data_ptr<float>(), static_cast<std::size_t>(len));
    flat.narrow(0, off, len).copy_(slice);
  }
}

torch::Tensor distributed_gram(const CsrMatrix& rows, Communicator& comm, int threads, torch::ScalarType dtype,
                               torch::Device staging) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor g = local_gram(rows, threads, dtype);
  reduce_gram(g, comm, 64 << 20, staging);
  if (comm.rank() == 0)
    std::fprintf(stderr, "gram: %lld x %lld (%.2f GB %s) in %.2f s\n", static_cast<long long>(rows.cols),
                 static_cast<long long>(rows.cols), gram_bytes(rows.cols, static_cast<int>(g.element_size())) / 1e9,
                 dtype == torch::kFloat64 ? "float64" : "float32",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return g;
}

torch::Tensor distributed_gram_block_cyclic(const CsrMatrix& rows, const BlockCyclicColumns& layout, Communicator& comm,
                                            int threads, torch::ScalarType dtype, torch::Device staging) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t n = rows.cols, nb = layout.block, ranks = layout.ranks;
  if (layout.n != n || layout.ranks != comm.size() || layout.rank != comm.rank())
    throw std::logic_error("distributed_gram_block_cyclic: layout does not match the data or the ranks");
  auto out = torch::zeros({layout.local_columns(), n}, dtype);
  // Cycles per round: a panel of about 1/16 of a rank's share (Note [Distributed Gram]).
  const std::int64_t cycle = nb * ranks, cycles = (n + cycle - 1) / cycle;
  const std::int64_t per_round = std::max<std::int64_t>(1, cycles / (16 * ranks) + (cycles % (16 * ranks) != 0));
  const std::int64_t group = per_round * nb;  // columns of one rank in a full round
  auto panel = torch::empty({ranks * group, n}, dtype);
  torch::Tensor wire_send, wire_recv;  // staging copies on the GPU for NCCL
  if (staging.is_cuda()) {
    wire_send = torch::empty_like(panel, panel.options().device(staging));
    wire_recv = torch::empty({group, n}, panel.options().device(staging));
  }
  auto last = torch::Tensor();  // receive buffer of a short last round
  std::vector<std::int64_t> row_of(static_cast<size_t>(n), -1);
  for (std::int64_t c0 = 0; c0 < cycles; c0 += per_round) {
    const std::int64_t lo = c0 * cycle, hi = std::min(n, (c0 + per_round) * cycle);
    std::fill(row_of.begin(), row_of.end(), -1);
    for (std::int64_t j = lo; j < hi; ++j)
      row_of[static_cast<size_t>(j)] = layout.owner(j) * group + (layout.local_index(j) - c0 * nb);
    panel.zero_();
    sum_outer_products(rows, panel, row_of, threads);
    const std::int64_t first = c0 * nb;  // this rank's first local column in the round
    const std::int64_t mine = std::min(group, layout.local_columns() - first);
    auto dest = out.narrow(0, first, mine);
    if (dtype == torch::kFloat64) {
      comm.allreduce_sum_host(panel.data_ptr<double>(), static_cast<std::size_t>(panel.numel()));
      dest.copy_(panel.narrow(0, layout.rank * group, mine));
      continue;
    }
    if (dtype != torch::kFloat32) throw std::logic_error("distributed_gram_block_cyclic: float64 or float32 only");
    const auto block = static_cast<std::size_t>(group * n);
    if (staging.is_cuda()) {
      wire_send.copy_(panel);
      comm.reduce_scatter_sum(wire_send.data_ptr<float>(), wire_recv.data_ptr<float>(), block, WireType::kFloat32);
      dest.copy_(wire_recv.narrow(0, 0, mine));
    } else if (mine == group) {
      comm.reduce_scatter_sum(panel.data_ptr<float>(), dest.data_ptr<float>(), block, WireType::kFloat32);
    } else {
      if (!last.defined()) last = torch::empty({group, n}, panel.options());
      comm.reduce_scatter_sum(panel.data_ptr<float>(), last.data_ptr<float>(), block, WireType::kFloat32);
      dest.copy_(last.narrow(0, 0, mine));
    }
  }
  if (comm.rank() == 0)
    std::fprintf(stderr, "gram: %lld x %lld split over %d rank(s) (%.2f GB %s on rank 0) in %.2f s\n",
                 static_cast<long long>(n), static_cast<long long>(n), comm.size(),
                 static_cast<double>(out.numel()) * static_cast<double>(out.element_size()) / 1e9,
                 dtype == torch::kFloat64 ? "float64" : "float32",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return out;
}

torch::Tensor distributed_gram_columns(const CsrMatrix& x, const std::vector<std::int64_t>& cols, Communicator& comm) {
  const std::int64_t n = x.cols, k = static_cast<std::int64_t>(cols.size());
  auto out = torch::zeros({n, k}, torch::kFloat64);
  double* o = out.data_ptr<double>();
  // G[:, c] = sum over users holding c of x_uc x_u: one scan of the rows per requested column.
  for (std::int64_t r = 0; r < x.rows; ++r) {
    const std::int64_t s = x.indptr[r] - x.indptr[0], e = x.indptr[r + 1] - x.indptr[0];
    for (std::int64_t j = 0; j < k; ++j) {
      const auto* first = x.indices.data() + s;
      const auto* last = x.indices.data() + e;
      const auto* hit = std::lower_bound(first, last, static_cast<std::int32_t>(cols[static_cast<size_t>(j)]));
      if (hit == last || *hit != cols[static_cast<size_t>(j)]) continue;
      const double xc = x.data[static_cast<size_t>(hit - x.indices.data())];
      for (std::int64_t p = s; p < e; ++p) o[x.indices[p] * k + j] += xc * x.data[p];
    }
  }
  comm.allreduce_sum_host(o, static_cast<std::size_t>(n * k));
  return out;
}

torch::Tensor local_gram_times(const CsrMatrix& x, const torch::Tensor& v, int threads) {
  if (v.dim() != 2 || v.size(0) != x.cols || v.scalar_type() != torch::kFloat64 || v.is_cuda() || !v.is_contiguous())
    throw std::logic_error("local_gram_times: expects a contiguous float64 host [cols, d] matrix");
  const std::int64_t n = x.cols, d = v.size(1);
  auto out = torch::zeros({n, d}, torch::kFloat64);
  const double* vp = v.data_ptr<double>();
  double* op = out.data_ptr<double>();
  const ThreadCount thread_count(threads);
  // Users in blocks: first Y = X_block V (rows split over threads), then out += X_block^T Y with
  // items split over threads, each thread reading the block's rows in order, so every entry of
  // `out` receives its additions in user order whatever the thread count.
  constexpr std::int64_t kBlock = 4096;
  std::vector<double> y(static_cast<size_t>(std::min(kBlock, std::max<std::int64_t>(x.rows, 1)) * d));
  const std::int64_t base = x.indptr.empty() ? 0 : x.indptr[0];
  for (std::int64_t u0 = 0; u0 < x.rows; u0 += kBlock) {
    const std::int64_t u1 = std::min(x.rows, u0 + kBlock);
    at::parallel_for(u0, u1, 64, [&](std::int64_t a, std::int64_t b) {
      for (std::int64_t u = a; u < b; ++u) {
        double* yu = y.data() + (u - u0) * d;
        std::fill(yu, yu + d, 0.0);
        for (std::int64_t p = x.indptr[u] - base; p < x.indptr[u + 1] - base; ++p) {
          const double w = x.data[p];
          const double* vi = vp + static_cast<std::int64_t>(x.indices[p]) * d;
          for (std::int64_t k = 0; k < d; ++k) yu[k] += w * vi[k];
        }
      }
    });
    const std::int64_t parts = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n));
    at::parallel_for(0, parts, 1, [&](std::int64_t t0, std::int64_t t1) {
      for (std::int64_t t = t0; t < t1; ++t) {
        const std::int64_t lo = n * t / parts, hi = n * (t + 1) / parts;
        for (std::int64_t u = u0; u < u1; ++u) {
          const double* yu = y.data() + (u - u0) * d;
          for (std::int64_t p = x.indptr[u] - base; p < x.indptr[u + 1] - base; ++p) {
            const std::int64_t i = x.indices[p];
            if (i < lo || i >= hi) continue;
            double* oi = op + i * d;
            const double w = x.data[p];
            for (std::int64_t k = 0; k < d; ++k) oi[k] += w * yu[k];
          }
        }
      }
    });
  }
  return out;
}

torch::Tensor distributed_gram_times(const CsrMatrix& rows, const torch::Tensor& v, Communicator& comm, int threads) {
  torch::Tensor out = local_gram_times(rows, v, threads);
  reduce_gram(out, comm);
  return out;
}

torch::Tensor distributed_item_sums(const CsrMatrix& x, Communicator& comm) {
  auto sums = torch::zeros({x.cols}, torch::kFloat64);
  double* s = sums.data_ptr<double>();
  for (std::int64_t p = 0; p < x.nnz(); ++p) s[x.indices[p]] += x.data[p];
  comm.allreduce_sum_host(s, static_cast<std::size_t>(x.cols));
  return sums;
}

double gram_bytes(std::int64_t items, int element_bytes) {
  return element_bytes * static_cast<double>(items) * static_cast<double>(items);
}

double gram_memory_limit_bytes(double configured_gb, int local_ranks) {
  if (configured_gb > 0) return configured_gb * 1e9;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const double node = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
  return 0.8 * node / std::max(1, local_ranks);
}

}  // namespace recvae
