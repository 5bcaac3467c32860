#pragma once
// Synthetic implicit-feedback data with planted structure: log-normal user activity, Zipf item
// popularity, and K latent taste groups (each user mixes 1-2 groups plus popularity noise), so a
// model that learns the groups clearly beats a popularity ranking.
#include <cstdint>
#include <string>

#include "recvae/data/raw_readers.h"
#include "recvae/data/split_protocol.h"

namespace recvae {

struct SynthOptions {
  std::string preset = "custom";
  std::int64_t users = 3000;  ///< total users, held-out ones included
  std::int64_t items = 1000;
  double mean_items = 40.0;               ///< mean interactions per user
  double activity_sigma = 1.0;            ///< sigma of the log-normal user activity
  double zipf_exponent = 1.0;             ///< item popularity ~ 1 / rank^exponent
  int groups = 20;                        ///< latent taste groups
  double second_group_probability = 0.5;  ///< chance a user mixes in a second group
  double noise_share = 0.1;               ///< share of a user's items drawn from global popularity
  std::int64_t min_items_per_user = 5;    ///< every user gets at least this many items
  std::int64_t min_users_per_item = 10;   ///< every item gets at least this many users
  std::int64_t heldout_users = 300;       ///< n for the .h5 split (validation = test = n)
  std::uint64_t seed = 1;
};

/// Options of a preset: tiny, ml-20m, netflix, msd. InputError for an unknown name.
SynthOptions synth_preset(const std::string& name);

/// Generates the interactions (values empty = all 1; users "0".."users-1", items "0".."items-1";
/// each user's items distinct). Deterministic for the options (seed included).
Interactions generate_synthetic(const SynthOptions& options, bool progress = true);

/// Protocol options matching a synthetic set (no threshold, min 5 items per user, no item filter).
ProtocolOptions synth_protocol(const SynthOptions& options);

/// Writes interactions as CSV with header `user,item` (through a temporary file and a rename).
void write_interactions_csv(const std::string& path, const Interactions& data);

}  // namespace recvae
