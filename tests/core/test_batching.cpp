#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "recvae/batch/batch_plan.h"
#include "recvae/batch/counter_rng.h"
#include "recvae/data/sharding.h"
#include "recvae/batch/sparse_batch.h"

namespace recvae {
namespace {

TEST(BatchPlan, PermutationIsDeterministicAndDependsOnEpochPassSeed) {
  auto a = pass_permutation(1000, 1, 2, 3);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_EQ(a, pass_permutation(1000, 1, 2, 3));
  EXPECT_NE(a, pass_permutation(1000, 1, 2, 4));
  EXPECT_NE(a, pass_permutation(1000, 1, 3, 3));
  EXPECT_NE(a, pass_permutation(1000, 2, 2, 3));
  EXPECT_NE(a, iota);
}

// The union of the ranks' shares of every batch is the global batch, in order, for any N.
TEST(BatchPlan, RanksPartitionEveryGlobalBatch) {
  const std::int64_t users = 103, batch = 10;
  std::vector<std::int64_t> indptr(users + 1, 0);
  for (std::int64_t r = 0; r < users; ++r) indptr[r + 1] = indptr[r] + (r % 7);
  auto perm = pass_permutation(users, 5, 0, 0);
  for (int n : {1, 2, 3, 8, 25, 150}) {
    std::vector<BatchPlan> plans;
    for (int rank = 0; rank < n; ++rank) {
      RowRange rr = balanced_range(indptr, rank, n);
      plans.emplace_back(perm, batch, rr.lo, rr.hi);
    }
    for (auto& p : plans) EXPECT_EQ(p.num_batches(), 11);
    for (std::int64_t b = 0; b < 11; ++b) {
      std::vector<std::int64_t> got;
      for (auto& p : plans) {
        LocalBatch lb = p.batch(b);
        EXPECT_EQ(lb.global_size, b == 10 ? 3 : 10);
        got.insert(got.end(), lb.global_rows.begin(), lb.global_rows.end());
      }
      std::vector<std::int64_t> want(perm.begin() + b * batch, perm.begin() + std::min(users, (b + 1) * batch));
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want) << "N=" << n << " batch " << b;
    }
  }
}

TEST(Sharding, RangesAreContiguousCoveringAndBalanced) {
  std::vector<std::int64_t> indptr = {0};
  for (int r = 0; r < 1000; ++r) indptr.push_back(indptr.back() + (r < 100 ? 50 : 1));  // skewed rows
  const std::int64_t work = indptr.back() + 1000;
  for (int n : {1, 2, 3, 7, 64}) {
    std::int64_t expect_lo = 0;
    for (int k = 0; k < n; ++k) {
      RowRange r = balanced_range(indptr, k, n);
      EXPECT_EQ(r.lo, expect_lo);
      expect_lo = r.hi;
      const std::int64_t w = indptr[r.hi] - indptr[r.lo] + r.size();
      EXPECT_LE(std::abs(static_cast<double>(w) - static_cast<double>(work) / n), 51.0) << "N=" << n << " rank " << k;
    }
    EXPECT_EQ(expect_lo, 1000);
  }
  // More ranks than rows: some ranks own nothing, all rows still owned exactly once.
  std::vector<std::int64_t> small = {0, 1, 1, 3};
  std::int64_t owned = 0;
  for (int k = 0; k < 8; ++k) owned += balanced_range(small, k, 8).size();
  EXPECT_EQ(owned, 3);
}

TEST(CounterRng, UniformAndNormalHaveTheRightMoments) {
  const std::uint64_t key = stream_key({1, 2, 3});
  double su = 0, sn = 0, sn2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double u = uniform01(key, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    double z = standard_normal(key, i);
    sn += z;
    sn2 += z * z;
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.01);
  EXPECT_NE(stream_key({1, 2, 3}), stream_key({1, 2, 4}));
  EXPECT_NE(stream_key({1, 2, 3}), stream_key({3, 2, 1}));
}

CsrMatrix some_rows() {
  CsrMatrix m = CsrMatrix::empty(0, 40);
  m.rows = 5;
  m.indptr = {0};
  for (int r = 0; r < 5; ++r) {
    for (int c = r; c < 40; c += 3) {
      m.indices.push_back(c);
      m.data.push_back(1.f);
    }
    m.indptr.push_back(m.nnz());
  }
  return m;
}

TEST(SparseBatch, NormalisesAndDropsOutOnlyWithNoise) {
  CsrMatrix m = some_rows();
  SparseBatch clean = assemble_batch(m, 0, {0, 1, 2}, nullptr, torch::kCPU);
  EXPECT_TRUE(torch::equal(clean.input, clean.clean_input));
  auto norms = torch::zeros({3}).index_add(0, clean.nnz_row, clean.clean_input.pow(2)).sqrt();
  EXPECT_TRUE(torch::allclose(norms, torch::ones({3})));
  EXPECT_FALSE(clean.noise.defined());

  BatchNoise zero{1, 0, 0, 0.0, 8};
  SparseBatch no_drop = assemble_batch(m, 0, {0, 1, 2}, &zero, torch::kCPU);
  EXPECT_TRUE(torch::equal(no_drop.input, no_drop.clean_input));

  BatchNoise half{1, 0, 0, 0.5, 8};
  SparseBatch drop = assemble_batch(m, 0, {0, 1, 2}, &half, torch::kCPU);
  auto kept = drop.input != 0;
  const double kept_share = kept.to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(kept_share, 0.25);
  EXPECT_LT(kept_share, 0.75);
  EXPECT_TRUE(torch::allclose(drop.input.masked_select(kept), 2 * drop.clean_input.masked_select(kept)));
  EXPECT_EQ(drop.noise.sizes(), (std::vector<std::int64_t>{3, 8}));
}

// A user's dropout mask and noise do not depend on the batch it is in or its position there.
TEST(SparseBatch, RandomnessBelongsToTheUser) {
  CsrMatrix m = some_rows();
  BatchNoise half{1, 2, 1, 0.5, 8};
  SparseBatch a = assemble_batch(m, 0, {0, 3}, &half, torch::kCPU);
  SparseBatch b = assemble_batch(m, 0, {4, 2, 3}, &half, torch::kCPU);
  EXPECT_TRUE(torch::equal(a.noise[1], b.noise[2]));
  EXPECT_TRUE(torch::equal(a.input.masked_select(a.nnz_row == 1), b.input.masked_select(b.nnz_row == 2)));
  // Shards hold local rows: the same global user through a shard offset gets the same draws.
  CsrMatrix tail = m.slice_rows(3, 5);
  SparseBatch c = assemble_batch(tail, 3, {3}, &half, torch::kCPU);
  EXPECT_TRUE(torch::equal(c.noise[0], a.noise[1]));
  BatchNoise other_pass{1, 2, 2, 0.5, 8};
  SparseBatch d = assemble_batch(m, 0, {0, 3}, &other_pass, torch::kCPU);
  EXPECT_FALSE(torch::equal(a.noise, d.noise));
}

}  // namespace
}  // namespace recvae
