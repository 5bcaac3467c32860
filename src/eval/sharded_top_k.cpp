#include "recvae/eval/sharded_top_k.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "recvae/dist/comm.h"
#include "recvae/eval/evaluator.h"
#include "recvae/linalg/thread_count.h"
#include "recvae/models/column_shards.h"

namespace recvae {

// Note [Column-sharded scores]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A model split by item columns (EASE solved across ranks keeps 1/N of B's columns per rank)
// can score a user only with every rank: rank q computes x_u B[:, items of q]. Users stay
// sharded as everywhere else, so a batch of one rank's users (the owner's) is broadcast, every
// rank scores it for its own items, drops the users' own items and keeps its best k (higher
// score first, the lower item on ties), and the owner merges the N lists. The merged list is
// exactly the top k of the whole row under the same order: an item in the global top k is in
// the top k of its own rank's items. The owner then scores the lists with score_rows as if they
// were the full row (every other item at -inf), so the metrics are those of the replicated
// model, ties included. Every rank walks the batches of every rank in the same order (the
// counts are agreed first), so the collectives match whatever the shard sizes. Only k entries
// per user and rank travel (an all-gather of the lists: the Communicator has no gather, and k is
// small), never a users x items block.

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The owner's rows on every rank.
CsrMatrix share_rows(const CsrMatrix& rows, int owner, Communicator& comm) {
  std::int64_t shape[3] = {rows.rows, rows.cols, rows.nnz()};
  comm.broadcast_host(shape, sizeof shape, owner);
  CsrMatrix m;
  if (comm.rank() == owner) {
    m = rows;
    const std::int64_t base = m.indptr.empty() ? 0 : m.indptr[0];
    for (auto& p : m.indptr) p -= base;
  } else {
    m.rows = shape[0];
    m.cols = shape[1];
    m.indptr.resize(static_cast<size_t>(shape[0] + 1));
    m.indices.resize(static_cast<size_t>(shape[2]));
    m.data.resize(static_cast<size_t>(shape[2]));
  }
  comm.broadcast_host(m.indptr.data(), m.indptr.size() * sizeof(std::int64_t), owner);
  if (shape[2] > 0) {
    comm.broadcast_host(m.indices.data(), m.indices.size() * sizeof(std::int32_t), owner);
    comm.broadcast_host(m.data.data(), m.data.size() * sizeof(float), owner);
  }
  return m;
}

// The best k of `count` (item, score) entries, written best first to out_items/out_scores (k slots).
template <typename Item, typename Score>
void best_k(std::int64_t count, Item item, Score score, std::int64_t k, std::int64_t* out_items, float* out_scores) {
  std::vector<std::int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  const auto better = [&](std::int64_t a, std::int64_t b) {
    const float sa = score(a), sb = score(b);
    return sa > sb || (sa == sb && item(a) < item(b));
  };
  const std::int64_t kept = std::min(k, count);
  std::partial_sort(order.begin(), order.begin() + kept, order.end(), better);
  std::int64_t w = 0;
  for (std::int64_t j = 0; j < kept; ++j) {
    const std::int64_t e = order[static_cast<size_t>(j)];
    if (item(e) < 0 || score(e) == kNegInf) continue;  // padding, or one of the user's own items
    out_items[w] = item(e);
    out_scores[w++] = score(e);
  }
  for (; w < k; ++w) {
    out_items[w] = -1;
    out_scores[w] = kNegInf;
  }
}

}  // namespace

RankedLists sharded_top_k(ColumnShardedScores& model, const CsrMatrix& rows, int owner, std::int64_t k,
                          Communicator& comm, int threads) {
  const CsrMatrix shared = share_rows(rows, owner, comm);
  const std::int64_t r = shared.rows;
  const std::vector<std::int64_t>& items = model.local_items();
  const auto local = static_cast<std::int64_t>(items.size());
  torch::Tensor scores = model.local_scores(shared, threads).contiguous();
  if (scores.size(0) != r || scores.size(1) != local || scores.scalar_type() != torch::kFloat32)
    throw std::logic_error("sharded_top_k: local_scores has the wrong shape or type");
  float* s = scores.data_ptr<float>();
  std::vector<std::int64_t> mine_items(static_cast<size_t>(r * k));
  std::vector<float> mine_scores(static_cast<size_t>(r * k));
  {
    const ThreadCount thread_count(threads);
    at::parallel_for(0, r, 16, [&](std::int64_t u0, std::int64_t u1) {
      for (std::int64_t u = u0; u < u1; ++u) {
        float* su = s + u * local;
        for (std::int64_t p = shared.indptr[u]; p < shared.indptr[u + 1]; ++p) {
          const auto hit = std::lower_bound(items.begin(), items.end(), shared.indices[p]);
          if (hit != items.end() && *hit == shared.indices[p]) su[hit - items.begin()] = kNegInf;
        }
        best_k(
            local, [&](std::int64_t c) { return items[static_cast<size_t>(c)]; }, [&](std::int64_t c) { return su[c]; },
            k, mine_items.data() + u * k, mine_scores.data() + u * k);
      }
    });
  }
  const std::vector<std::int64_t> all_items = allgather_host(comm, mine_items);
  const std::vector<float> all_scores = allgather_host(comm, mine_scores);
  RankedLists out;
  if (comm.rank() != owner) return out;
  out.rows = r;
  out.k = k;
  out.items.resize(static_cast<size_t>(r * k));
  out.scores.resize(static_cast<size_t>(r * k));
  const std::int64_t ranks = comm.size();
  const ThreadCount thread_count(threads);
  at::parallel_for(0, r, 16, [&](std::int64_t u0, std::int64_t u1) {
    for (std::int64_t u = u0; u < u1; ++u) {
      // Entry e of user u: rank e / k, position e % k of that rank's list.
      const auto at = [&](std::int64_t e) { return static_cast<size_t>((e / k) * r * k + u * k + e % k); };
      best_k(
          ranks * k, [&](std::int64_t e) { return all_items[at(e)]; },
          [&](std::int64_t e) { return all_scores[at(e)]; }, k, out.items.data() + u * k, out.scores.data() + u * k);
    }
  });
  return out;
}

MetricSums evaluate_column_sharded(ColumnShardedScores& model, const HeldOutShard& shard, std::int64_t batch_size,
                                   Communicator& comm, int threads) {
  const std::int64_t items = shard.fold_in.cols, k = std::min<std::int64_t>(100, items);
  const std::vector<std::int64_t> counts = allgather_host(comm, std::vector<std::int64_t>{shard.fold_in.rows});
  MetricSums sums;
  std::vector<float> dense;
  for (int owner = 0; owner < comm.size(); ++owner) {
    for (std::int64_t lo = 0; lo < counts[static_cast<size_t>(owner)]; lo += batch_size) {
      const std::int64_t hi = std::min(counts[static_cast<size_t>(owner)], lo + batch_size);
      const bool mine = owner == comm.rank();
      const RankedLists lists =
          sharded_top_k(model, mine ? shard.fold_in.slice_rows(lo, hi) : CsrMatrix(), owner, k, comm, threads);
      if (!mine) continue;
      // The merged lists as full rows, every other item at -inf (Note [Column-sharded scores]).
      dense.assign(static_cast<size_t>((hi - lo) * items), kNegInf);
      for (std::int64_t u = 0; u < lists.rows; ++u)
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t item = lists.items[static_cast<size_t>(u * k + j)];
          if (item >= 0) dense[static_cast<size_t>(u * items + item)] = lists.scores[static_cast<size_t>(u * k + j)];
        }
      sums += score_rows(dense.data(), items, hi - lo, items, shard.fold_in, shard.holdout, lo, threads);
    }
  }
  return sums;
}

}  // namespace recvae
