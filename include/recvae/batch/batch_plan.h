#pragma once
// The world-size-invariant batch plan: which users form each global batch of a pass, and which
// of them this rank owns.
#include <cstdint>
#include <vector>

namespace recvae {

// Note [World-size invariance]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A scaling study compares the same config at 1, 2, 4, 8 ranks, so N ranks must train the same
// model as one rank, up to floating-point summation order. The rules that make it so:
//  1. Batches are global. Every pass draws one permutation of all training users from
//     (seed, epoch, pass) alone; global batch b is permutation[b*B, (b+1)*B). Every rank computes
//     the same permutation and processes the users of batch b that fall in its own row range.
//  2. The loss is normalised by the size of the *global* batch, never by the rank's share, and
//     gradients are summed across ranks, so the summed gradient is the single-process gradient.
//  3. Randomness belongs to users, not ranks: a user's dropout mask and reparameterisation noise
//     come from a counter-based stream keyed by (seed, epoch, pass, user id) (counter_rng.h).
//  4. Every rank runs the same number of steps and issues the same collectives in the same
//     order. A rank that owns none of a batch's users (N does not divide the users, or N exceeds
//     the batch) contributes a zero gradient to the all-reduce and still steps its optimiser:
//     Adam's state advances identically everywhere, so parameters stay bit-identical.
//  5. Parameters start identical (broadcast from rank 0) and stay identical because every rank
//     applies the same reduced gradient; a checksum all-reduce verifies this at every
//     encoder_old refresh (Note [Snapshot check] in trainer.cpp).

// Note [Streams of a second training stage]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The keys name (seed, epoch, pass), so a run that starts over at epoch 0 with the seed of an
// earlier run replays that run's permutations, dropout masks and noise. RaCT does exactly this
// with ract.actor_run: its critic epochs 0..N would hand the actor the very inputs it was
// trained on, and the actor fits those better than fresh ones (on Gowalla the critic's target
// NDCG climbed from 0.56 to 0.64 over the actor's 40 training epochs and fell back at the 41st,
// with the actor unchanged). The authors' critic sees fresh draws. A pass that belongs to a
// later stage therefore names its own stream (PassSpec::noise_stream), and the trainer draws
// from stream_seed(seed, stream) instead of the run seed; stream 0 is the seed itself, so the
// models' own training is drawn as before.

/// The seed of a pass's random streams: `seed` for stream 0, else a key mixed from both.
std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream);

/// The permutation of [0, n) used by pass `pass` of epoch `epoch` (Fisher-Yates, counter RNG).
std::vector<std::int64_t> pass_permutation(std::int64_t n, std::uint64_t seed, std::int64_t epoch, std::int64_t pass);

/// Rows of one global batch owned by a rank.
struct LocalBatch {
  std::int64_t global_size = 0;           ///< users in the whole global batch (loss normaliser)
  std::vector<std::int64_t> global_rows;  ///< owned users, global row ids, in batch order
};

/// Splits a pass's permutation into global batches and selects this rank's users.
class BatchPlan {
 public:
  /// `owned_lo`/`owned_hi`: this rank's row range [lo, hi) of the split.
  BatchPlan(std::vector<std::int64_t> permutation, std::int64_t batch_size, std::int64_t owned_lo,
            std::int64_t owned_hi);
  /// Number of global batches (the same on every rank).
  std::int64_t num_batches() const;
  /// Batch b restricted to this rank's rows.
  LocalBatch batch(std::int64_t b) const;

 private:
  std::vector<std::int64_t> perm_;
  std::int64_t batch_size_, lo_, hi_;
};

}  // namespace recvae
