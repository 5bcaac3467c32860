#pragma once
// Top-k lists and metrics of a model whose scores are split by item columns over the ranks
// (Note [Column-sharded scores] in sharded_top_k.cpp).
#include <cstdint>
#include <vector>

#include "recvae/data/csr.h"
#include "recvae/eval/metrics.h"

namespace recvae {

class Communicator;
class ColumnShardedScores;
struct HeldOutShard;

/// Ranked lists of `rows` users, k entries each (item -1 and score -inf pad a short list).
struct RankedLists {
  std::int64_t rows = 0;            ///< users
  std::int64_t k = 0;               ///< entries per user
  std::vector<std::int64_t> items;  ///< [rows * k] item of each entry, best first
  std::vector<float> scores;        ///< [rows * k] its score
};

/// The top `k` unseen items of each user whose fold-in rows are `rows` (read on `owner` only;
/// other ranks pass anything): every rank scores them for its own items, drops the users' own
/// items and keeps its best k, and the lists are merged on `owner` (higher score first, the lower
/// item on ties, as score_rows ranks). A collective; ranks other than `owner` get empty lists.
RankedLists sharded_top_k(ColumnShardedScores& model, const CsrMatrix& rows, int owner, std::int64_t k,
                          Communicator& comm, int threads);

/// Metric sums of this rank's held-out users (add the ranks with reduce_metrics), for a
/// column-sharded model, scoring `batch_size` users at a time: every rank takes part in every
/// rank's batches, so all ranks must call it together (a collective).
MetricSums evaluate_column_sharded(ColumnShardedScores& model, const HeldOutShard& shard, std::int64_t batch_size,
                                   Communicator& comm, int threads);

}  // namespace recvae
