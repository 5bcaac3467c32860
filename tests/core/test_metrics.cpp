#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "recvae/eval/metrics.h"

namespace recvae {
namespace {

double d(int rank1) { return 1.0 / std::log2(rank1 + 1.0); }  // discount of 1-based rank

CsrMatrix rows_of(std::int64_t cols, const std::vector<std::vector<std::int32_t>>& rows) {
  CsrMatrix m = CsrMatrix::empty(0, cols);
  m.rows = static_cast<std::int64_t>(rows.size());
  m.indptr.assign(1, 0);
  for (const auto& r : rows) {
    for (auto c : r) {
      m.indices.push_back(c);
      m.data.push_back(1.f);
    }
    m.indptr.push_back(m.nnz());
  }
  return m;
}

TEST(Metrics, TopKSkipsFoldInAndSortsByScore) {
  const float s[] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f};
  const std::int32_t excl[] = {0, 3};
  EXPECT_EQ(top_k(s, 6, excl, 2, 3), (std::vector<std::int32_t>{1, 2, 4}));
  EXPECT_EQ(top_k(s, 6, excl, 2, 10), (std::vector<std::int32_t>{1, 2, 4, 5}));
}

TEST(Metrics, TiesBreakByLowerItemIdAndNanRanksLast) {
  const float s[] = {1.f, NAN, 1.f, 2.f, 1.f};
  EXPECT_EQ(top_k(s, 5, nullptr, 0, 5), (std::vector<std::int32_t>{3, 0, 2, 4, 1}));
  EXPECT_EQ(top_k(s, 5, nullptr, 0, 2), (std::vector<std::int32_t>{3, 0}));
  // All tied: the ranking is by item id, so a relevant item at id 3 sits at rank 4.
  const float flat[] = {1.f, 1.f, 1.f, 1.f};
  const std::int32_t holdout[] = {3};
  auto ranked = top_k(flat, 4, nullptr, 0, 100);
  EXPECT_NEAR(ndcg_at_k(ranked, holdout, 1, 100), d(4), 1e-12);
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, holdout, 1, 3), 0.0);
}

TEST(Metrics, NdcgHandComputedWithHoldoutShorterThanK) {
  const std::vector<std::int32_t> ranked = {1, 2, 3, 4, 5};
  const std::int32_t holdout[] = {2, 5};
  // Hits at ranks 2 and 5; IDCG over min(100, 2) = 2 positions.
  EXPECT_NEAR(ndcg_at_k(ranked, holdout, 2, 100), (d(2) + d(5)) / (d(1) + d(2)), 1e-12);
  // Cut at k = 3: only the rank-2 hit counts, IDCG still over 2 positions.
  EXPECT_NEAR(ndcg_at_k(ranked, holdout, 2, 3), d(2) / (d(1) + d(2)), 1e-12);
}

TEST(Metrics, RecallDividesByMinOfKAndHoldout) {
  const std::vector<std::int32_t> ranked = {7, 8, 9, 1};
  const std::int32_t holdout[] = {1, 7, 9};
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, holdout, 3, 2), 1.0 / 2.0);  // one hit in top 2, min(2, 3) = 2
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, holdout, 3, 20), 1.0);       // all three, min(20, 3) = 3
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, holdout, 3, 3), 2.0 / 3.0);
}

TEST(Metrics, EmptyHoldoutUsersAreSkipped) {
  const float scores[] = {0.1f, 0.9f, 0.5f, 0.3f,   // user 0
                          0.8f, 0.2f, 0.4f, 0.6f};  // user 1 (empty holdout)
  CsrMatrix fold_in = rows_of(4, {{1}, {0}});
  CsrMatrix holdout = rows_of(4, {{2}, {}});
  MetricSums m = score_rows(scores, 4, 2, 4, fold_in, holdout, 0);
  EXPECT_EQ(m.users, 1);
  // User 0: item 1 excluded, ranking 2, 3, 0: the hit is at rank 1.
  EXPECT_DOUBLE_EQ(m.ndcg100, 1.0);
  EXPECT_DOUBLE_EQ(m.mean_recall20(), 1.0);
}

TEST(Metrics, FoldInExclusionChangesTheRanking) {
  const float scores[] = {0.9f, 0.8f, 0.1f};
  CsrMatrix holdout = rows_of(3, {{1}});
  MetricSums with = score_rows(scores, 3, 1, 3, rows_of(3, {{0}}), holdout, 0);
  MetricSums without = score_rows(scores, 3, 1, 3, rows_of(3, {{}}), holdout, 0);
  EXPECT_DOUBLE_EQ(with.ndcg100, 1.0);
  EXPECT_NEAR(without.ndcg100, d(2), 1e-12);
}

TEST(Metrics, SharedScoreRowAndThreadsGiveTheSameSums) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0, 1);
  const int users = 300, items = 500;
  std::vector<float> scores(static_cast<size_t>(users) * items);
  for (auto& s : scores) s = u(rng);
  std::vector<std::vector<std::int32_t>> fi(users), ho(users);
  for (int r = 0; r < users; ++r)
    for (int i = 0; i < items; ++i) {
      float x = u(rng);
      if (x < 0.03f)
        fi[r].push_back(i);
      else if (x < 0.05f)
        ho[r].push_back(i);
    }
  CsrMatrix fold_in = rows_of(items, fi), holdout = rows_of(items, ho);
  MetricSums one = score_rows(scores.data(), items, users, items, fold_in, holdout, 0, 1);
  MetricSums four = score_rows(scores.data(), items, users, items, fold_in, holdout, 0, 4);
  EXPECT_EQ(one.ndcg100, four.ndcg100);
  EXPECT_EQ(one.recall50, four.recall50);

  // Against a brute-force full sort.
  double ndcg = 0, r20 = 0;
  int counted = 0;
  for (int r = 0; r < users; ++r) {
    if (ho[r].empty()) continue;
    std::vector<int> order;
    for (int i = 0; i < items; ++i)
      if (!std::binary_search(fi[r].begin(), fi[r].end(), i)) order.push_back(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return scores[r * items + a] > scores[r * items + b]; });
    double dcg = 0, idcg = 0;
    int hits20 = 0;
    for (int k = 0; k < 100; ++k) {
      bool hit = std::binary_search(ho[r].begin(), ho[r].end(), order[k]);
      if (hit) dcg += d(k + 1);
      if (hit && k < 20) ++hits20;
    }
    for (int k = 0; k < std::min<int>(100, ho[r].size()); ++k) idcg += d(k + 1);
    ndcg += dcg / idcg;
    r20 += static_cast<double>(hits20) / std::min<int>(20, ho[r].size());
    ++counted;
  }
  EXPECT_EQ(one.users, counted);
  EXPECT_NEAR(one.ndcg100, ndcg, 1e-9);
  EXPECT_NEAR(one.recall20, r20, 1e-9);

  // A stride of 0 scores every user with row 0.
  MetricSums shared = score_rows(scores.data(), 0, users, items, fold_in, holdout, 0);
  std::vector<float> repeated;
  for (int r = 0; r < users; ++r) repeated.insert(repeated.end(), scores.begin(), scores.begin() + items);
  MetricSums explicit_rows = score_rows(repeated.data(), items, users, items, fold_in, holdout, 0);
  EXPECT_EQ(shared.ndcg100, explicit_rows.ndcg100);
}

}  // namespace
}  // namespace recvae
