// The split protocol and the synthetic generator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "recvae/util/error.h"
#include "recvae/data/split_protocol.h"
#include "recvae/data/synth.h"

using namespace recvae;

namespace {

/// `users` users with 1..max_items random items out of `items` (names "u<k>", "i<k>"), values 1..5.
Interactions random_interactions(int users, int items, int max_items, std::uint64_t seed) {
  SplitMix64 rng(seed);
  Interactions d;
  d.source = "fixture";
  for (int u = 0; u < users; ++u) d.user_names.push_back("u" + std::to_string(u));
  for (int i = 0; i < items; ++i) d.item_names.push_back("i" + std::to_string(i));
  for (int u = 0; u < users; ++u) {
    const int n = 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(max_items)));
    for (int k = 0; k < n; ++k) {
      d.user.push_back(static_cast<std::uint32_t>(u));
      d.item.push_back(static_cast<std::uint32_t>(rng.below(static_cast<std::uint64_t>(items))));
      d.value.push_back(static_cast<float>(1 + rng.below(5)));
    }
  }
  return d;
}

/// user name -> set of item names that pass the threshold, from the raw fixture.
std::map<std::string, std::set<std::string>> positives(const Interactions& d, double threshold) {
  std::map<std::string, std::set<std::string>> m;
  for (std::size_t k = 0; k < d.user.size(); ++k)
    if (d.value.empty() || d.value[k] > threshold) m[d.user_names[d.user[k]]].insert(d.item_names[d.item[k]]);
  return m;
}

std::set<std::string> row_items(const CsrMatrix& m, std::int64_t r, const std::vector<std::string>& ids) {
  std::set<std::string> s;
  for (std::int64_t k = m.indptr[r]; k < m.indptr[r + 1]; ++k) s.insert(ids[m.indices[k]]);
  return s;
}

ProtocolOptions options(std::int64_t heldout, std::uint64_t seed) {
  ProtocolOptions o = protocol_defaults("movielens");
  o.heldout_users = heldout;
  o.seed = seed;
  return o;
}

}  // namespace

TEST(Rng, DeterministicAndInRange) {
  SplitMix64 a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const auto x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 70000; ++i) ++hist[a.below(7)];
  for (int h : hist) EXPECT_NEAR(h, 10000, 500);
  double sum = 0, sq = 0;
  for (int i = 0; i < 20000; ++i) {
    const double z = a.normal();
    sum += z;
    sq += z * z;
  }
  EXPECT_NEAR(sum / 20000, 0.0, 0.03);
  EXPECT_NEAR(sq / 20000, 1.0, 0.05);
}

TEST(Protocol, SplitProperties) {
  const Interactions raw = random_interactions(600, 300, 40, 3);
  const auto pos = positives(raw, 3.5);
  SplitData d = apply_protocol(Interactions(raw), options(50, 11), false);
  ASSERT_EQ(d.validation_fold_in.rows, 50);
  ASSERT_EQ(d.validation_holdout.rows, 50);
  ASSERT_EQ(d.test_fold_in.rows, 50);
  ASSERT_EQ(d.validation_user_ids.size(), 50u);
  const std::int64_t cols = d.train.cols;
  ASSERT_EQ(static_cast<std::int64_t>(d.item_ids.size()), cols);
  for (const CsrMatrix* m :
       {&d.train, &d.validation_fold_in, &d.validation_holdout, &d.test_fold_in, &d.test_holdout}) {
    EXPECT_EQ(m->cols, cols);
    EXPECT_NO_THROW(m->validate("split"));
    for (float v : m->data) ASSERT_EQ(v, 1.0f);
  }

  // Users kept = users with >= 5 positives; each appears in exactly one split.
  std::set<std::string> kept;
  for (auto& [u, items] : pos)
    if (items.size() >= 5) kept.insert(u);
  std::set<std::string> seen;
  for (auto* ids : {&d.train_user_ids, &d.validation_user_ids, &d.test_user_ids})
    for (auto& u : *ids) EXPECT_TRUE(seen.insert(u).second) << u << " in two splits";
  EXPECT_EQ(seen, kept);
  EXPECT_EQ(static_cast<std::int64_t>(d.train_user_ids.size()), static_cast<std::int64_t>(kept.size()) - 100);

  // Train rows hold exactly the user's positives; columns are exactly the train items.
  std::set<std::string> train_items;
  for (std::int64_t r = 0; r < d.train.rows; ++r) {
    auto s = row_items(d.train, r, d.item_ids);
    EXPECT_EQ(s, pos.at(d.train_user_ids[r]));
    train_items.insert(s.begin(), s.end());
  }
  EXPECT_EQ(train_items, std::set<std::string>(d.item_ids.begin(), d.item_ids.end()));

  // Held-out users: fold-in + holdout = positives restricted to train items; holdout = floor(20%).
  int with_holdout = 0;
  auto check_heldout = [&](const CsrMatrix& fi, const CsrMatrix& ho, const std::vector<std::string>& ids) {
    for (std::int64_t r = 0; r < fi.rows; ++r) {
      auto a = row_items(fi, r, d.item_ids), b = row_items(ho, r, d.item_ids);
      for (auto& x : b) EXPECT_EQ(a.count(x), 0u) << "item in fold-in and holdout";
      std::set<std::string> expect;
      for (auto& x : pos.at(ids[r]))
        if (train_items.count(x)) expect.insert(x);
      std::set<std::string> both = a;
      both.insert(b.begin(), b.end());
      EXPECT_EQ(both, expect);
      const auto n = static_cast<std::int64_t>(both.size());
      EXPECT_EQ(ho.row_nnz(r), n >= 5 ? static_cast<std::int64_t>(std::floor(0.2 * static_cast<double>(n))) : 0)
          << "user " << ids[r] << " with " << n << " items";
      with_holdout += ho.row_nnz(r) > 0;
    }
  };
  check_heldout(d.validation_fold_in, d.validation_holdout, d.validation_user_ids);
  check_heldout(d.test_fold_in, d.test_holdout, d.test_user_ids);
  EXPECT_GT(with_holdout, 50);
  EXPECT_EQ(d.protocol.heldout_users, 50);
  EXPECT_TRUE(d.protocol.has_threshold);
  EXPECT_EQ(d.protocol.seed, 11u);
}

TEST(Protocol, HeldoutItemsOutsideTrainAreDropped) {
  // 4 train-able users share items a..e; item "rare" is only used by one user. With 1 held-out pair,
  // whichever users end up held out, their items must be within the train columns.
  Interactions d;
  d.source = "fixture";
  d.user_names = {"p", "q", "r", "s", "t"};
  d.item_names = {"a", "b", "c", "d", "e", "rare0", "rare1", "rare2", "rare3", "rare4"};
  for (std::uint32_t u = 0; u < 5; ++u) {
    for (std::uint32_t i = 0; i < 5; ++i) d.user.push_back(u), d.item.push_back(i);
    d.user.push_back(u), d.item.push_back(5 + u);
  }
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    ProtocolOptions o = protocol_defaults("csv");
    o.heldout_users = 1;
    o.seed = seed;
    SplitData s = apply_protocol(Interactions(d), o, false);
    EXPECT_EQ(s.train.rows, 3);
    EXPECT_EQ(s.train.cols, 8);  // a..e plus the 3 train users' rare items
    EXPECT_EQ(s.validation_fold_in.row_nnz(0) + s.validation_holdout.row_nnz(0), 5);
    EXPECT_EQ(s.validation_holdout.row_nnz(0), 1);
    std::set<std::string> held;
    for (const CsrMatrix* m : {&s.validation_fold_in, &s.validation_holdout, &s.test_fold_in, &s.test_holdout})
      for (std::int32_t c : m->indices) held.insert(s.item_ids[c]);
    for (auto& x : held) EXPECT_EQ(x.size(), 1u) << "held-out user kept item " << x << " that no train user has";
  }
}

TEST(Protocol, ItemFilterBeforeUserFilter) {
  // msd-style: items >= 2 users, then users >= 2 items. User "a" has x (popular) and y (only a):
  // item first drops y, then a (1 item). The user-first order would keep a.
  Interactions d;
  d.source = "fixture";
  d.user_names = {"a", "b", "c", "d", "e", "f"};
  d.item_names = {"x", "y", "z", "w"};
  auto add = [&](std::uint32_t u, std::uint32_t i) { d.user.push_back(u), d.item.push_back(i), d.value.push_back(1); };
  add(0, 0), add(0, 1);
  for (std::uint32_t u = 1; u < 6; ++u) add(u, 0), add(u, 2), add(u, 3);
  ProtocolOptions o = protocol_defaults("msd");
  o.min_users_per_item = 2;
  o.min_items_per_user = 2;
  o.heldout_users = 1;
  SplitData s = apply_protocol(Interactions(d), o, false);
  std::set<std::string> users(s.train_user_ids.begin(), s.train_user_ids.end());
  users.insert(s.validation_user_ids.begin(), s.validation_user_ids.end());
  users.insert(s.test_user_ids.begin(), s.test_user_ids.end());
  EXPECT_EQ(users, (std::set<std::string>{"b", "c", "d", "e", "f"}));
  EXPECT_EQ(std::count(s.item_ids.begin(), s.item_ids.end(), "y"), 0);
  EXPECT_FALSE(s.protocol.has_threshold);
  EXPECT_EQ(s.protocol.min_users_per_item, 2);
}

TEST(Protocol, ThresholdAndDuplicates) {
  Interactions d;
  d.source = "fixture";
  for (int u = 0; u < 4; ++u) d.user_names.push_back("u" + std::to_string(u));
  for (int i = 0; i < 8; ++i) d.item_names.push_back("i" + std::to_string(i));
  auto add = [&](std::uint32_t u, std::uint32_t i, float v) {
    d.user.push_back(u), d.item.push_back(i), d.value.push_back(v);
  };
  for (std::uint32_t u = 0; u < 4; ++u)
    for (std::uint32_t i = 0; i < 6; ++i) add(u, i, 4.0f);
  add(0, 6, 3.5f);  // not > 3.5: dropped
  add(0, 7, 3.0f);
  add(1, 0, 5.0f);  // duplicate pair: one interaction
  ProtocolOptions o = options(1, 5);
  SplitData s = apply_protocol(Interactions(d), o, false);
  EXPECT_EQ(s.train.cols, 6);
  EXPECT_EQ(s.train.nnz(), 12);
  o.has_threshold = false;
  SplitData all = apply_protocol(Interactions(d), o, false);
  EXPECT_GE(all.train.cols, 6);
}

TEST(Protocol, DeterministicForSeed) {
  const Interactions raw = random_interactions(400, 200, 30, 9);
  SplitData a = apply_protocol(Interactions(raw), options(40, 1), false);
  SplitData b = apply_protocol(Interactions(raw), options(40, 1), false);
  SplitData c = apply_protocol(Interactions(raw), options(40, 2), false);
  EXPECT_EQ(a.train_user_ids, b.train_user_ids);
  EXPECT_EQ(a.item_ids, b.item_ids);
  EXPECT_EQ(a.train.indices, b.train.indices);
  EXPECT_EQ(a.validation_holdout.indices, b.validation_holdout.indices);
  EXPECT_EQ(a.test_holdout.indptr, b.test_holdout.indptr);
  EXPECT_NE(a.train_user_ids, c.train_user_ids);
  EXPECT_NE(a.test_user_ids, c.test_user_ids);
}

TEST(Protocol, Errors) {
  const Interactions raw = random_interactions(50, 40, 30, 1);
  // 2n must be < users left.
  std::size_t kept = 0;
  for (auto& [u, s] : positives(raw, 3.5)) kept += s.size() >= 5;
  ASSERT_GT(kept, 4u);
  ProtocolOptions o = options(static_cast<std::int64_t>((kept + 1) / 2), 1);
  try {
    apply_protocol(Interactions(raw), o, false);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("fixture"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("heldout-users"), std::string::npos);
  }
  o.heldout_users = static_cast<std::int64_t>((kept - 1) / 2);
  EXPECT_NO_THROW(apply_protocol(Interactions(raw), o, false));
  o.min_items_per_user = 1000;
  EXPECT_THROW(apply_protocol(Interactions(raw), o, false), InputError);
  o = options(1, 1);
  o.threshold = 10;
  EXPECT_THROW(apply_protocol(Interactions(raw), o, false), InputError);
  EXPECT_THROW(protocol_defaults("parquet"), InputError);
}

TEST(Protocol, AutoHeldoutIsTenPercent) {
  const Interactions raw = random_interactions(500, 100, 20, 4);
  ProtocolOptions o = protocol_defaults("csv");
  SplitData s = apply_protocol(Interactions(raw), o, false);
  const std::int64_t users = s.train.rows + 2 * s.validation_fold_in.rows;
  EXPECT_EQ(s.validation_fold_in.rows, users / 10);
  EXPECT_EQ(s.test_fold_in.rows, users / 10);
}

// ---- synthetic data -------------------------------------------------------------------------

TEST(Synth, DeterministicForSeed) {
  SynthOptions o = synth_preset("tiny");
  Interactions a = generate_synthetic(o, false), b = generate_synthetic(o, false);
  EXPECT_EQ(a.user, b.user);
  EXPECT_EQ(a.item, b.item);
  o.seed = 2;
  Interactions c = generate_synthetic(o, false);
  EXPECT_NE(a.item, c.item);
}

TEST(Synth, TinyPresetShapes) {
  SynthOptions o = synth_preset("tiny");
  Interactions raw = generate_synthetic(o, false);
  EXPECT_EQ(raw.num_users(), 3000);
  EXPECT_EQ(raw.num_items(), 1000);
  EXPECT_NEAR(static_cast<double>(raw.size()) / 3000.0, 40.0, 2.0);
  // Each user's items are distinct and at least 5; each item has >= 10 users.
  std::vector<std::set<std::uint32_t>> per_user(3000);
  std::vector<int> per_item(1000, 0);
  for (std::size_t k = 0; k < raw.user.size(); ++k) {
    EXPECT_TRUE(per_user[raw.user[k]].insert(raw.item[k]).second);
    ++per_item[raw.item[k]];
  }
  for (auto& s : per_user) EXPECT_GE(s.size(), 5u);
  for (int c : per_item) EXPECT_GE(c, 10);
  // Heavy-tailed activity and popularity.
  std::vector<std::size_t> sizes;
  for (auto& s : per_user) sizes.push_back(s.size());
  std::sort(sizes.begin(), sizes.end());
  EXPECT_LT(sizes[1500], 40u);  // median below the mean (log-normal)
  EXPECT_GT(sizes.back(), 150u);
  std::sort(per_item.rbegin(), per_item.rend());
  EXPECT_GT(per_item[0], 10 * per_item[500]);

  SplitData s = apply_protocol(std::move(raw), synth_protocol(o), false);
  EXPECT_EQ(s.train.rows, 2400);
  EXPECT_EQ(s.validation_fold_in.rows, 300);
  EXPECT_EQ(s.test_holdout.rows, 300);
  EXPECT_EQ(s.train.cols, 1000);
}

TEST(Synth, PlantedStructureBeatsPopularity) {
  // Item-item co-occurrence scoring (a stand-in for a model) must clearly beat popularity on the
  // validation holdout: Recall@20.
  SynthOptions o = synth_preset("tiny");
  SplitData s = apply_protocol(generate_synthetic(o, false), synth_protocol(o), false);
  const std::int64_t I = s.train.cols;
  std::vector<float> co(static_cast<std::size_t>(I * I), 0.0f);
  std::vector<double> pop(static_cast<std::size_t>(I), 0.0);
  for (std::int64_t r = 0; r < s.train.rows; ++r)
    for (std::int64_t a = s.train.indptr[r]; a < s.train.indptr[r + 1]; ++a) {
      pop[s.train.indices[a]] += 1;
      for (std::int64_t b = s.train.indptr[r]; b < s.train.indptr[r + 1]; ++b)
        co[s.train.indices[a] * I + s.train.indices[b]] += 1.0f;
    }
  auto recall = [&](bool use_co) {
    double total = 0;
    int users = 0;
    const CsrMatrix &fi = s.validation_fold_in, &ho = s.validation_holdout;
    for (std::int64_t r = 0; r < fi.rows; ++r) {
      if (ho.row_nnz(r) == 0) continue;
      std::vector<double> score(static_cast<std::size_t>(I));
      for (std::int64_t i = 0; i < I; ++i) {
        if (!use_co)
          score[i] = pop[i];
        else {
          double sc = 0;
          for (std::int64_t k = fi.indptr[r]; k < fi.indptr[r + 1]; ++k)
            sc += co[fi.indices[k] * I + i] / std::sqrt(pop[fi.indices[k]] * pop[i] + 1.0);
          score[i] = sc;
        }
      }
      for (std::int64_t k = fi.indptr[r]; k < fi.indptr[r + 1]; ++k) score[fi.indices[k]] = -1e30;
      std::vector<std::int32_t> idx(static_cast<std::size_t>(I));
      for (std::int64_t i = 0; i < I; ++i) idx[i] = static_cast<std::int32_t>(i);
      std::partial_sort(idx.begin(), idx.begin() + 20, idx.end(), [&](int a, int b) { return score[a] > score[b]; });
      std::set<std::int32_t> top(idx.begin(), idx.begin() + 20);
      int hits = 0;
      for (std::int64_t k = ho.indptr[r]; k < ho.indptr[r + 1]; ++k) hits += top.count(ho.indices[k]) > 0;
      total += static_cast<double>(hits) / static_cast<double>(std::min<std::int64_t>(20, ho.row_nnz(r)));
      ++users;
    }
    return total / users;
  };
  const double r_pop = recall(false), r_co = recall(true);
  EXPECT_GT(r_co, 1.5 * r_pop) << "co-occurrence " << r_co << " vs popularity " << r_pop;
}

TEST(Synth, Presets) {
  EXPECT_EQ(synth_preset("ml-20m").users, 136677);
  EXPECT_EQ(synth_preset("ml-20m").items, 20108);
  EXPECT_EQ(synth_preset("ml-20m").heldout_users, 10000);
  EXPECT_EQ(synth_preset("netflix").items, 17769);
  EXPECT_EQ(synth_preset("msd").users, 571355);
  EXPECT_EQ(synth_preset("msd").heldout_users, 50000);
  EXPECT_THROW(synth_preset("huge"), InputError);
}
