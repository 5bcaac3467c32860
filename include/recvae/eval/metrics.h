#pragma once
// Ranking metrics of the strong-generalisation protocol (spec: Metrics): NDCG@100, Recall@20,
// Recall@50 per held-out user, summed so that ranks can add their sums.
#include <cstdint>
#include <vector>

#include "recvae/data/csr.h"

namespace recvae {

/// Metric sums over users with a non-empty holdout (means = sum / users).
struct MetricSums {
  double ndcg100 = 0;      ///< sum of NDCG@100
  double recall20 = 0;     ///< sum of Recall@20
  double recall50 = 0;     ///< sum of Recall@50
  std::int64_t users = 0;  ///< users counted (empty holdouts are skipped)

  /// Adds another set of sums.
  MetricSums& operator+=(const MetricSums& o);
  /// The sums as {ndcg100, recall20, recall50, users} (the layout reductions move around).
  void to_array(double (&out)[4]) const;
  /// Sums from the to_array layout.
  static MetricSums from_array(const double* v);
  /// Mean NDCG@100 (0 when no user counted).
  double mean_ndcg100() const { return users ? ndcg100 / users : 0.0; }
  /// Mean Recall@20.
  double mean_recall20() const { return users ? recall20 / users : 0.0; }
  /// Mean Recall@50.
  double mean_recall50() const { return users ? recall50 / users : 0.0; }
};

/// The k best items of a score row, best first, skipping `excluded` (sorted item ids). Ties are
/// broken by the lower item id; NaN scores rank last. Returns fewer than k when items run out.
std::vector<std::int32_t> top_k(const float* scores, std::int64_t items, const std::int32_t* excluded,
                                std::int64_t num_excluded, int k);

/// NDCG@k of a ranking against a sorted holdout: DCG over the first k ranks divided by the IDCG
/// of min(k, |holdout|) hits. Returns 0 for an empty holdout (callers skip those users).
double ndcg_at_k(const std::vector<std::int32_t>& ranked, const std::int32_t* holdout, std::int64_t n, int k);

/// Recall@k: hits in the first k ranks / min(k, |holdout|). 0 for an empty holdout.
double recall_at_k(const std::vector<std::int32_t>& ranked, const std::int32_t* holdout, std::int64_t n, int k);

/// Metrics of `rows` users whose score rows are `scores` (row r at scores + r * row_stride; a
/// stride of 0 scores every user with one shared row, e.g. popularity). Users are rows
/// [first_row, first_row + rows) of `fold_in` (excluded from ranking) and `holdout` (targets).
/// Uses up to `threads` threads; the sums do not depend on it.
MetricSums score_rows(const float* scores, std::int64_t row_stride, std::int64_t rows, std::int64_t items,
                      const CsrMatrix& fold_in, const CsrMatrix& holdout, std::int64_t first_row, int threads = 1);

}  // namespace recvae
