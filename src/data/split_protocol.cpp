// The strong-generalisation protocol. Memory: the parsed arrays plus one user-grouped copy of the
// item ids; everything else is per-user or per-item.
#include "recvae/data/split_protocol.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "recvae/util/error.h"
#include "recvae/util/progress.h"

namespace recvae {

std::uint64_t SplitMix64::below(std::uint64_t n) {
  // Lemire: multiply a 64-bit draw by n, reject the few draws that would bias the high word.
  __uint128_t m = static_cast<__uint128_t>(next()) * n;
  auto low = static_cast<std::uint64_t>(m);
  if (low < n) {
    const std::uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<__uint128_t>(next()) * n;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

double SplitMix64::normal() {
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
}

ProtocolOptions protocol_defaults(const std::string& format) {
  ProtocolOptions o;
  o.source_format = format;
  if (format == "movielens") {
    o.has_threshold = true;
    o.threshold = 3.5;
    o.min_items_per_user = 5;
    o.heldout_users = 10000;
  } else if (format == "netflix") {
    o.has_threshold = true;
    o.threshold = 3.5;
    o.min_items_per_user = 5;
    o.heldout_users = 40000;
  } else if (format == "msd") {
    o.min_users_per_item = 200;
    o.min_items_per_user = 20;
    o.heldout_users = 50000;
  } else if (format == "csv") {
    o.min_items_per_user = 5;
    o.heldout_users = -1;  // 10% of the users
  } else {
    throw InputError("unknown format '" + format + "' (expected movielens, netflix, msd, csv or liang)");
  }
  return o;
}

namespace {

double sparsity_pct(std::int64_t nnz, std::int64_t users, std::int64_t items) {
  if (users == 0 || items == 0) return 0.0;
  return 100.0 * static_cast<double>(nnz) / (static_cast<double>(users) * static_cast<double>(items));
}

void print_stage(bool verbose, const char* stage, std::int64_t nnz, std::int64_t users, std::int64_t items) {
  if (!verbose) return;
  std::printf("%-28s %12lld interactions %9lld users %8lld items  density %.4f%%\n", stage, static_cast<long long>(nnz),
              static_cast<long long>(users), static_cast<long long>(items), sparsity_pct(nnz, users, items));
  std::fflush(stdout);
}

/// Sorts `v` and chooses floor(fraction * n) random positions (partial Fisher-Yates) as holdout.
void split_user(std::vector<std::int32_t>& cols, const ProtocolOptions& o, SplitMix64& rng,
                std::vector<std::int32_t>& fold_in, std::vector<std::int32_t>& holdout,
                std::vector<std::uint32_t>& scratch) {
  fold_in.clear();
  holdout.clear();
  std::sort(cols.begin(), cols.end());
  const auto n = static_cast<std::int64_t>(cols.size());
  if (n < o.min_items_for_holdout) {
    fold_in = cols;
    return;
  }
  // Same arithmetic as the reference code: int(fraction * n) in double precision.
  const auto k = static_cast<std::int64_t>(std::floor(o.holdout_fraction * static_cast<double>(n)));
  scratch.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) scratch[i] = static_cast<std::uint32_t>(i);
  for (std::int64_t i = 0; i < k; ++i) {
    const auto j = i + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n - i)));
    std::swap(scratch[i], scratch[j]);
  }
  std::vector<char> chosen(static_cast<std::size_t>(n), 0);
  for (std::int64_t i = 0; i < k; ++i) chosen[scratch[i]] = 1;
  for (std::int64_t i = 0; i < n; ++i) (chosen[i] ? holdout : fold_in).push_back(cols[i]);
}

void append_row(CsrMatrix& m, const std::vector<std::int32_t>& cols) {
  m.indices.insert(m.indices.end(), cols.begin(), cols.end());
  m.data.insert(m.data.end(), cols.size(), 1.0f);
  m.indptr.push_back(static_cast<std::int64_t>(m.indices.size()));
  ++m.rows;
}

CsrMatrix start_matrix(std::int64_t cols, std::int64_t rows_hint, std::int64_t nnz_hint) {
  CsrMatrix m;
  m.cols = cols;
  m.indptr.reserve(static_cast<std::size_t>(rows_hint) + 1);
  m.indptr.push_back(0);
  m.indices.reserve(static_cast<std::size_t>(nnz_hint));
  m.data.reserve(static_cast<std::size_t>(nnz_hint));
  return m;
}

}  // namespace

SplitData apply_protocol(Interactions&& in, const ProtocolOptions& o, bool verbose) {
  const std::string& src = in.source.empty() ? std::string("input") : in.source;
  if (o.holdout_fraction < 0.0 || o.holdout_fraction >= 1.0 || std::isnan(o.holdout_fraction))
    throw InputError("holdout fraction must be in [0, 1), got " + std::to_string(o.holdout_fraction));
  if (o.min_items_per_user < 0 || o.min_users_per_item < 0) throw InputError("filter minimums must be >= 0");
  if (in.user.size() != in.item.size() || (!in.value.empty() && in.value.size() != in.user.size()))
    throw InputError(src + ": internal: interaction arrays differ in length");
  const std::int64_t U = in.num_users(), I = in.num_items();
  print_stage(verbose, "raw", in.size(), U, I);

  // 1. Threshold (in place), then the values are no longer needed.
  if (o.has_threshold && !in.value.empty()) {
    std::size_t w = 0;
    for (std::size_t k = 0; k < in.user.size(); ++k) {
      if (in.value[k] > o.threshold) {
        in.user[w] = in.user[k];
        in.item[w] = in.item[k];
        ++w;
      }
    }
    in.user.resize(w);
    in.item.resize(w);
    char label[64];
    std::snprintf(label, sizeof label, "value > %g", o.threshold);
    print_stage(verbose, label, static_cast<std::int64_t>(w), U, I);
  }
  std::vector<float>().swap(in.value);
  if (in.user.empty()) throw InputError(src + ": no interactions left after the threshold");

  // 2. Group by user (stable counting sort), sort and deduplicate each user's items.
  std::vector<std::int64_t> uptr(static_cast<std::size_t>(U) + 1, 0);
  for (std::uint32_t u : in.user) ++uptr[u + 1];
  for (std::int64_t u = 0; u < U; ++u) uptr[u + 1] += uptr[u];
  std::vector<std::uint32_t> uitems(in.user.size());
  {
    std::vector<std::int64_t> next(uptr.begin(), uptr.end() - 1);
    for (std::size_t k = 0; k < in.user.size(); ++k) uitems[static_cast<std::size_t>(next[in.user[k]]++)] = in.item[k];
  }
  std::vector<std::int64_t> ucount(static_cast<std::size_t>(U), 0);  // distinct items per user
  std::vector<std::int64_t> icount(static_cast<std::size_t>(I), 0);  // distinct users per item
  std::int64_t distinct = 0;
  for (std::int64_t u = 0; u < U; ++u) {
    auto b = uitems.begin() + uptr[u], e = uitems.begin() + uptr[u + 1];
    std::sort(b, e);
    auto last = std::unique(b, e);
    std::fill(last, e, std::numeric_limits<std::uint32_t>::max());  // padding, skipped below
    ucount[u] = last - b;
    distinct += ucount[u];
    for (auto it = b; it != last; ++it) ++icount[*it];
  }
  if (distinct != static_cast<std::int64_t>(uitems.size()))
    print_stage(verbose, "distinct (user, item)", distinct, U, I);
  constexpr std::uint32_t kPad = std::numeric_limits<std::uint32_t>::max();

  // 3. Filters: items first (users per item), then users (items per user), one pass each.
  std::vector<char> item_ok(static_cast<std::size_t>(I), 1);
  if (o.min_users_per_item > 0) {
    for (std::int64_t i = 0; i < I; ++i) item_ok[i] = icount[i] >= o.min_users_per_item;
    for (std::int64_t u = 0; u < U; ++u) {
      std::int64_t c = 0;
      for (std::int64_t k = uptr[u]; k < uptr[u + 1]; ++k)
        if (uitems[k] != kPad && item_ok[uitems[k]]) ++c;
      ucount[u] = c;
    }
    if (verbose) {
      std::int64_t nnz = 0, users = 0, items = 0;
      for (std::int64_t u = 0; u < U; ++u) nnz += ucount[u], users += ucount[u] > 0;
      for (std::int64_t i = 0; i < I; ++i) items += item_ok[i] && icount[i] > 0;
      char label[64];
      std::snprintf(label, sizeof label, "items >= %lld users", static_cast<long long>(o.min_users_per_item));
      print_stage(verbose, label, nnz, users, items);
    }
  }
  std::vector<std::uint32_t> kept_users;
  for (std::int64_t u = 0; u < U; ++u)
    if (ucount[u] > 0 && ucount[u] >= o.min_items_per_user) kept_users.push_back(static_cast<std::uint32_t>(u));
  {
    std::fill(icount.begin(), icount.end(), 0);
    std::int64_t nnz = 0;
    for (std::uint32_t u : kept_users)
      for (std::int64_t k = uptr[u]; k < uptr[u + 1]; ++k)
        if (uitems[k] != kPad && item_ok[uitems[k]]) ++icount[uitems[k]], ++nnz;
    std::int64_t items = 0;
    for (std::int64_t i = 0; i < I; ++i) items += icount[i] > 0;
    char label[64];
    std::snprintf(label, sizeof label, "users >= %lld items", static_cast<long long>(o.min_items_per_user));
    print_stage(verbose, label, nnz, static_cast<std::int64_t>(kept_users.size()), items);
  }
  const auto n_users = static_cast<std::int64_t>(kept_users.size());
  if (n_users == 0) throw InputError(src + ": no users left after filtering");
  std::int64_t n_heldout = o.heldout_users;
  if (n_heldout < 0) n_heldout = std::max<std::int64_t>(1, n_users / 10);
  if (2 * n_heldout >= n_users)
    throw InputError(src + ": 2 x heldout-users = " + std::to_string(2 * n_heldout) + " must be less than the " +
                     std::to_string(n_users) + " users left after filtering");

  // 4. Shuffle users (Fisher-Yates), last 2n are held out.
  SplitMix64 rng(o.seed);
  for (std::int64_t i = n_users - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(kept_users[i], kept_users[j]);
  }
  const std::int64_t n_train = n_users - 2 * n_heldout;
  std::vector<std::int8_t> role(static_cast<std::size_t>(U), -1);  // 0 train, 1 validation, 2 test
  for (std::int64_t r = 0; r < n_users; ++r)
    role[kept_users[r]] = static_cast<std::int8_t>(r < n_train ? 0 : (r < n_train + n_heldout ? 1 : 2));

  // 5. Columns: train items in order of first appearance in the input among the training users.
  std::vector<std::int32_t> col(static_cast<std::size_t>(I), -1);
  std::int32_t n_cols = 0;
  for (std::size_t k = 0; k < in.user.size(); ++k) {
    const std::uint32_t i = in.item[k];
    if (col[i] < 0 && role[in.user[k]] == 0 && item_ok[i]) col[i] = n_cols++;
  }
  std::vector<std::uint32_t>().swap(in.user);
  std::vector<std::uint32_t>().swap(in.item);

  SplitData out;
  out.item_ids.resize(static_cast<std::size_t>(n_cols));
  for (std::int64_t i = 0; i < I; ++i)
    if (col[i] >= 0) out.item_ids[static_cast<std::size_t>(col[i])] = std::move(in.item_names[i]);
  std::vector<std::string>().swap(in.item_names);

  // 6. Rows: train users in shuffled order, then validation and test users with fold-in/holdout.
  std::int64_t train_nnz = 0;
  for (std::int64_t r = 0; r < n_train; ++r) {
    const std::uint32_t u = kept_users[r];
    for (std::int64_t k = uptr[u]; k < uptr[u + 1]; ++k)
      if (uitems[k] != kPad && item_ok[uitems[k]]) ++train_nnz;
  }
  out.train = start_matrix(n_cols, n_train, train_nnz);
  out.validation_fold_in = start_matrix(n_cols, n_heldout, 0);
  out.validation_holdout = start_matrix(n_cols, n_heldout, 0);
  out.test_fold_in = start_matrix(n_cols, n_heldout, 0);
  out.test_holdout = start_matrix(n_cols, n_heldout, 0);
  out.train_user_ids.reserve(static_cast<std::size_t>(n_train));
  SplitMix64 holdout_rng(o.seed ^ 0xD1B54A32D192ED03ull);
  std::vector<std::int32_t> cols, fold_in, holdout;
  std::vector<std::uint32_t> scratch;
  Progress prog("building splits", n_users, verbose && n_users >= 100000);
  for (std::int64_t r = 0; r < n_users; ++r) {
    const std::uint32_t u = kept_users[r];
    cols.clear();
    for (std::int64_t k = uptr[u]; k < uptr[u + 1]; ++k) {
      const std::uint32_t i = uitems[k];
      if (i != kPad && item_ok[i] && col[i] >= 0) cols.push_back(col[i]);
    }
    std::string& name = in.user_names[u];
    if (r < n_train) {
      std::sort(cols.begin(), cols.end());
      append_row(out.train, cols);
      out.train_user_ids.push_back(std::move(name));
    } else {
      const bool validation = r < n_train + n_heldout;
      split_user(cols, o, holdout_rng, fold_in, holdout, scratch);
      append_row(validation ? out.validation_fold_in : out.test_fold_in, fold_in);
      append_row(validation ? out.validation_holdout : out.test_holdout, holdout);
      (validation ? out.validation_user_ids : out.test_user_ids).push_back(std::move(name));
    }
    if ((r & 0xFFFF) == 0) prog.update(r);
  }
  prog.update(n_users);
  prog.finish();

  ProtocolInfo& p = out.protocol;
  p.source_format = o.source_format;
  p.has_threshold = o.has_threshold;
  p.threshold = o.has_threshold ? o.threshold : 0.0;
  p.min_items_per_user = o.min_items_per_user;
  p.min_users_per_item = o.min_users_per_item;
  p.heldout_users = n_heldout;
  p.holdout_fraction = o.holdout_fraction;
  p.seed = o.seed;
  if (verbose) print_split_stats(out);
  return out;
}

void print_split_stats(const SplitData& d) {
  auto line = [](const char* name, const CsrMatrix& m) {
    std::printf("  %-20s %9lld users %12lld interactions\n", name, static_cast<long long>(m.rows),
                static_cast<long long>(m.nnz()));
  };
  std::printf("split: %lld items\n", static_cast<long long>(d.train.cols));
  line("train", d.train);
  line("validation/fold_in", d.validation_fold_in);
  line("validation/holdout", d.validation_holdout);
  line("test/fold_in", d.test_fold_in);
  line("test/holdout", d.test_holdout);
  std::fflush(stdout);
}

}  // namespace recvae
