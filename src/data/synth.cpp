// Synthetic interactions with planted taste groups (see synth.h).
#include "recvae/data/synth.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unistd.h>

#include "recvae/util/error.h"
#include "recvae/util/progress.h"

namespace recvae {

namespace {

/// Walker/Vose alias table: O(1) draws from a discrete distribution over `ids`.
class AliasTable {
 public:
  AliasTable() = default;
  AliasTable(const std::vector<std::uint32_t>& ids, const std::vector<double>& weights) : ids_(ids) {
    const std::size_t n = ids.size();
    prob_.assign(n, 0.0);
    alias_.assign(n, 0);
    if (n == 0) return;
    double total = 0;
    for (double w : weights) total += w;
    std::vector<double> scaled(n);
    std::vector<std::uint32_t> small, large;
    for (std::size_t i = 0; i < n; ++i) {
      scaled[i] = weights[i] * static_cast<double>(n) / total;
      (scaled[i] < 1.0 ? small : large).push_back(static_cast<std::uint32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      const std::uint32_t s = small.back(), l = large.back();
      small.pop_back();
      prob_[s] = scaled[s];
      alias_[s] = l;
      scaled[l] = (scaled[l] + scaled[s]) - 1.0;
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    for (std::uint32_t i : large) prob_[i] = 1.0;
    for (std::uint32_t i : small) prob_[i] = 1.0;
  }
  bool empty() const { return ids_.empty(); }
  std::uint32_t draw(SplitMix64& rng) const {
    const auto k = static_cast<std::size_t>(rng.below(ids_.size()));
    return ids_[rng.uniform() < prob_[k] ? k : alias_[k]];
  }

 private:
  std::vector<std::uint32_t> ids_;
  std::vector<double> prob_;
  std::vector<std::uint32_t> alias_;
};

}  // namespace

SynthOptions synth_preset(const std::string& name) {
  SynthOptions o;
  o.preset = name;
  if (name == "tiny") {
    o.users = 3000;
    o.items = 1000;
    o.mean_items = 40;
    o.groups = 10;
    o.heldout_users = 300;
  } else if (name == "ml-20m") {
    o.users = 136677;
    o.items = 20108;
    o.mean_items = 70;
    o.heldout_users = 10000;
  } else if (name == "netflix") {
    o.users = 463435;
    o.items = 17769;
    o.mean_items = 56.9e6 / 463435.0;
    o.heldout_users = 40000;
  } else if (name == "msd") {
    o.users = 571355;
    o.items = 41140;
    o.mean_items = 33.6e6 / 571355.0;
    o.heldout_users = 50000;
  } else {
    throw InputError("unknown preset '" + name + "' (expected tiny, ml-20m, netflix or msd)");
  }
  return o;
}

ProtocolOptions synth_protocol(const SynthOptions& s) {
  ProtocolOptions o;
  o.source_format = "synthetic";
  o.has_threshold = false;
  o.min_users_per_item = 0;
  o.min_items_per_user = 5;
  o.heldout_users = s.heldout_users;
  o.holdout_fraction = 0.2;
  o.seed = s.seed;
  return o;
}

Interactions generate_synthetic(const SynthOptions& o, bool progress) {
  if (o.users < 1 || o.items < 1) throw InputError("synthetic data needs at least one user and one item");
  if (o.users > (std::int64_t(1) << 31) || o.items > (std::int64_t(1) << 31))
    throw InputError("too many users or items");
  if (o.groups < 1) throw InputError("synthetic data needs at least one taste group");
  if (!(o.mean_items > 0)) throw InputError("mean items per user must be positive");
  const auto U = static_cast<std::size_t>(o.users), I = static_cast<std::size_t>(o.items);
  const auto K = static_cast<std::size_t>(o.groups);
  SplitMix64 rng(o.seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull);

  // Item popularity: Zipf over a random permutation of the items; each item has a home group.
  std::vector<std::uint32_t> perm(I);
  for (std::size_t i = 0; i < I; ++i) perm[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = I - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  std::vector<double> pop(I);
  for (std::size_t r = 0; r < I; ++r) pop[perm[r]] = 1.0 / std::pow(static_cast<double>(r + 1), o.zipf_exponent);
  std::vector<std::uint32_t> home(I);
  std::vector<std::vector<std::uint32_t>> group_items(K);
  std::vector<std::vector<double>> group_weights(K);
  for (std::size_t i = 0; i < I; ++i) {
    home[i] = static_cast<std::uint32_t>(rng.below(K));
    group_items[home[i]].push_back(static_cast<std::uint32_t>(i));
    // Within a group the popularity is flattened, so groups have their own distinct head items.
    group_weights[home[i]].push_back(std::sqrt(pop[i]));
  }
  std::vector<AliasTable> group_table(K);
  for (std::size_t g = 0; g < K; ++g) group_table[g] = AliasTable(group_items[g], group_weights[g]);
  std::vector<std::uint32_t> all(I);
  for (std::size_t i = 0; i < I; ++i) all[i] = static_cast<std::uint32_t>(i);
  AliasTable global(all, pop);

  // User activity: log-normal, scaled so that the clamped counts average mean_items.
  const std::int64_t lo = std::min<std::int64_t>(o.min_items_per_user, o.items);
  const std::int64_t hi = std::max<std::int64_t>(lo, o.items / 4);
  std::vector<double> raw(U);
  for (std::size_t u = 0; u < U; ++u) raw[u] = std::exp(o.activity_sigma * rng.normal());
  auto count_for = [&](double scale, double x) { return std::clamp<std::int64_t>(std::llround(scale * x), lo, hi); };
  const double target = o.mean_items * static_cast<double>(U);
  double s_lo = 0.0, s_hi = o.mean_items * 4;
  for (int iter = 0; iter < 50; ++iter) {
    const double mid = 0.5 * (s_lo + s_hi);
    double total = 0;
    for (double x : raw) total += static_cast<double>(count_for(mid, x));
    (total < target ? s_lo : s_hi) = mid;
  }
  const double scale = 0.5 * (s_lo + s_hi);

  Interactions out;
  out.source = "synthetic:" + o.preset;
  const std::size_t expected =
      static_cast<std::size_t>(target * 1.01) + static_cast<std::size_t>(o.min_users_per_item) * I;
  out.user.reserve(expected);
  out.item.reserve(expected);
  std::vector<std::uint32_t> stamp(I, 0);  // user index + 1 that last took the item
  std::vector<std::int64_t> uptr(U + 1, 0);
  std::vector<std::uint32_t> primary(U);
  Progress prog("generating users", o.users, progress && o.users >= 100000);
  for (std::size_t u = 0; u < U; ++u) {
    const auto g1 = static_cast<std::uint32_t>(rng.below(K));
    std::uint32_t g2 = g1;
    if (K > 1 && rng.uniform() < o.second_group_probability) {
      g2 = static_cast<std::uint32_t>(rng.below(K - 1));
      if (g2 >= g1) ++g2;
    }
    const double w1 = g2 == g1 ? 1.0 : 0.5 + 0.5 * rng.uniform();
    primary[u] = g1;
    const std::int64_t n = count_for(scale, raw[u]);
    const auto mark = static_cast<std::uint32_t>(u + 1);
    for (std::int64_t k = 0; k < n; ++k) {
      std::uint32_t item = 0;
      bool found = false;
      for (int attempt = 0; attempt < 24 && !found; ++attempt) {
        const double r = rng.uniform();
        const AliasTable* t;
        if (attempt >= 16 || r < o.noise_share)
          t = &global;
        else
          t = &group_table[(g2 != g1 && rng.uniform() >= w1) ? g2 : g1];
        if (t->empty()) t = &global;
        item = t->draw(rng);
        found = stamp[item] != mark;
      }
      while (!found) {  // dense user: uniform draws (at most a quarter of the items are taken)
        item = static_cast<std::uint32_t>(rng.below(I));
        found = stamp[item] != mark;
      }
      stamp[item] = mark;
      out.user.push_back(static_cast<std::uint32_t>(u));
      out.item.push_back(item);
    }
    uptr[u + 1] = static_cast<std::int64_t>(out.user.size());
    if ((u & 0x3FFF) == 0) prog.update(static_cast<std::int64_t>(u));
  }
  prog.update(o.users);
  prog.finish();

  // Every item gets at least min_users_per_item users (so the train split keeps every item),
  // drawn from the users whose primary group is the item's home group.
  std::vector<std::int64_t> icount(I, 0);
  for (std::uint32_t i : out.item) ++icount[i];
  std::vector<std::vector<std::uint32_t>> group_users(K);
  for (std::size_t u = 0; u < U; ++u) group_users[primary[u]].push_back(static_cast<std::uint32_t>(u));
  const std::int64_t need = std::min<std::int64_t>(o.min_users_per_item, o.users);
  for (std::size_t i = 0; i < I; ++i) {
    if (icount[i] >= need) continue;
    const auto& pool = group_users[home[i]].size() >= static_cast<std::size_t>(need) * 2 ? group_users[home[i]] : all;
    const bool pool_is_all = &pool == &all;
    std::vector<std::uint32_t> added;
    std::int64_t tries = 0;
    while (icount[i] < need && tries < 100 * need) {
      ++tries;
      std::uint32_t u = pool_is_all ? static_cast<std::uint32_t>(rng.below(U)) : pool[rng.below(pool.size())];
      bool has = std::find(added.begin(), added.end(), u) != added.end();
      for (std::int64_t k = uptr[u]; k < uptr[u + 1] && !has; ++k) has = out.item[k] == i;
      if (has) continue;
      added.push_back(u);
      out.user.push_back(u);
      out.item.push_back(static_cast<std::uint32_t>(i));
      ++icount[i];
    }
  }
  out.user_names.reserve(U);
  for (std::size_t u = 0; u < U; ++u) out.user_names.push_back(std::to_string(u));
  out.item_names.reserve(I);
  for (std::size_t i = 0; i < I; ++i) out.item_names.push_back(std::to_string(i));
  return out;
}

void write_interactions_csv(const std::string& path, const Interactions& d) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw InputError(path + ": cannot create " + tmp + " (missing directory or no permission?)");
  std::string buf;
  buf.reserve(1 << 21);
  bool ok = true;
  auto flush = [&] {
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) ok = false;
    buf.clear();
  };
  buf += d.value.empty() ? "user,item\n" : "user,item,value\n";
  for (std::size_t k = 0; k < d.user.size() && ok; ++k) {
    buf += d.user_names[d.user[k]];
    buf += ',';
    buf += d.item_names[d.item[k]];
    if (!d.value.empty()) {
      char num[32];
      auto r = std::to_chars(num, num + sizeof num, d.value[k]);
      buf += ',';
      buf.append(num, r.ptr);
    }
    buf += '\n';
    if (buf.size() > (1 << 20)) flush();
  }
  flush();
  if (std::fclose(f) != 0) ok = false;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError(path + ": write failed");
  }
}

}  // namespace recvae
