#pragma once
// The strong-generalisation split protocol (Liang et al. 2018; spec "Data protocol"), shared by
// recvae_prep and recvae_synth, and the deterministic RNG both use.
#include <cstdint>
#include <string>

#include "recvae/data/h5_dataset.h"
#include "recvae/data/raw_readers.h"

namespace recvae {

/// splitmix64: a small, fully specified RNG, so splits are identical on every platform/libstdc++.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform integer in [0, n) (n > 0), unbiased (Lemire's multiply-and-reject).
  std::uint64_t below(std::uint64_t n);
  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Standard normal (Box-Muller; one value per call, deterministic).
  double normal();

 private:
  std::uint64_t state_;
};

/// Parameters of the protocol (defaults per format: see protocol_defaults()).
struct ProtocolOptions {
  std::string source_format;   ///< written to the file: movielens, netflix, msd, csv, synthetic
  bool has_threshold = false;  ///< keep interactions with value > threshold when true
  double threshold = 0.0;
  std::int64_t min_users_per_item = 0;     ///< item filter (applied first), 0 = none
  std::int64_t min_items_per_user = 5;     ///< user filter (applied after the item filter)
  std::int64_t heldout_users = -1;         ///< n validation = n test users; -1 = 10% of the users (>= 1)
  double holdout_fraction = 0.2;           ///< floor(fraction * count) items of a held-out user are holdout
  std::int64_t min_items_for_holdout = 5;  ///< held-out users with fewer items keep all as fold-in
  std::uint64_t seed = 98765;              ///< user shuffle and holdout choice
};

/// Protocol defaults of a raw format (movielens, netflix, msd, csv); InputError for an unknown one.
ProtocolOptions protocol_defaults(const std::string& format);

/// Runs the protocol (threshold, item filter, user filter, user shuffle, train/validation/test users,
/// train item columns, fold-in/holdout choice) and returns the split with all values 1.0. Consumes
/// `in` (its memory is released on the way). verbose: statistics of each stage on stdout.
/// Throws InputError naming in.source when nothing is left or 2 * heldout_users >= users.
SplitData apply_protocol(Interactions&& in, const ProtocolOptions& options, bool verbose);

/// Prints the shape statistics of a split (users, items, interactions per split) on stdout.
void print_split_stats(const SplitData& data);

}  // namespace recvae
