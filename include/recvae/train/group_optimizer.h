#pragma once
// Adam for one replicated parameter group with its gradients synchronised across ranks, whole
// (replicated) or a 1/N shard per rank (Note [Sharded optimizer] in group_optimizer.cpp).
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/dist/grad_sync.h"

namespace recvae {

/// How a replicated group's gradients cross ranks (the dist: section's keys).
struct SyncOptions {
  bool sharded = false;                ///< dist.optimizer: sharded (ZeRO-1)
  WireType wire = WireType::kFloat32;  ///< dist.grad_dtype: the gradients' type on the wire
  std::int64_t bucket_bytes = 0;       ///< dist.bucket_mb in bytes: 0 = one bucket per group (Note [Gradient buckets])
};

/// A slice of a group's flat buffers that crosses the wire as one collective, and this rank's part
/// of it (Note [Gradient buckets]).
struct GradBucket {
  std::int64_t lo = 0, len = 0;          ///< the slice [lo, lo + len) of the flat buffers
  std::int64_t own_lo = 0, own_len = 0;  ///< this rank's part of it (the whole slice when replicated)
  std::int64_t state_lo = 0;             ///< where that part starts in this rank's optimiser state
};

/// What the gradient collectives moved, summed over steps (their time is StepBreakdown::comm).
struct CommTally {
  std::int64_t payload_bytes = 0;  ///< the collectives' buffer sizes (what one rank hands over)
  std::int64_t wire_bytes = 0;     ///< bytes each rank sends with ring algorithms (2(N-1)/N per all-reduce)
  std::int64_t collectives = 0;    ///< collectives issued
  std::int64_t overlapped = 0;     ///< collectives handed over during backward (Note [Overlapped gradient sync])

  /// Adds another tally's counts.
  CommTally& operator+=(const CommTally& more) {
    payload_bytes += more.payload_bytes;
    wire_bytes += more.wire_bytes;
    collectives += more.collectives;
    overlapped += more.overlapped;
    return *this;
  }
};

/// One replicated group's gradient sync and Adam update on this rank.
class GroupOptimizer {
 public:
  /// Optimises `group` (bound with a multiple of comm.size() elements when sharded) at `lr`.
  GroupOptimizer(GradGroup& group, double lr, const SyncOptions& options, Communicator& comm);

  /// Sums the gradients across ranks: the whole buffer, or this rank's shard of it, bucket by
  /// bucket in reduction order.
  void reduce(CommTally& tally);
  /// Readies bucket `k`'s gradients for the wire (bf16: rounds them into the wire buffer), on the
  /// thread that computed them, so that on a GPU the copy is ordered after their kernels.
  void stage_bucket(std::size_t k);
  /// Sums bucket `k`'s staged gradients across ranks (a collective; any thread, one at a time).
  void exchange_bucket(std::size_t k, CommTally& tally);
  /// The group's buckets, in buffer order; collectives take them in reduction_order().
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  /// Bucket indices in the order their collectives are issued: last first, as backward makes them.
  std::vector<std::size_t> reduction_order() const;
  /// Before a penalty's backward: a sharded group's buffer is zeroed so that backward leaves the
  /// penalty's gradient alone in it (Note [Regularisers after the all-reduce]).
  void before_penalty();
  /// After a penalty's backward: a sharded group adds this rank's part of it to its shard.
  void after_penalty();
  /// One Adam update of this rank's part (the whole group when replicated).
  void update();
  /// Sharded: every rank's updated parameters to every rank (nothing when replicated).
  void gather(CommTally& tally);

  /// The first and second moments of the whole group (numel elements; a collective when sharded).
  std::array<torch::Tensor, 2> full_moments();
  /// Loads the whole group's moments (as full_moments gives them) and the update count.
  void load_moments(const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, std::int64_t steps);
  /// Updates so far.
  std::int64_t steps() const { return steps_; }
  /// Bytes of optimiser state this rank holds.
  std::int64_t state_bytes() const { return 2 * exp_avg_.numel() * static_cast<std::int64_t>(sizeof(float)); }

 private:
  void count(CommTally& tally, std::int64_t payload, double ring_factor) const;
  // Bucket k's part of this rank in the flat buffers, and in the rank's state tensors.
  torch::Tensor own(const torch::Tensor& flat, const GradBucket& b) const {
    return flat.narrow(0, b.own_lo, b.own_len);
  }
  torch::Tensor state(const torch::Tensor& t, const GradBucket& b) const { return t.narrow(0, b.state_lo, b.own_len); }

  GradGroup& group_;
  double lr_;
  SyncOptions options_;
  Communicator& comm_;
  std::vector<GradBucket> buckets_;
  std::int64_t len_ = 0;      // elements of this rank's part of the flat buffers (all buckets)
  torch::Tensor grad_shard_;  // sharded: the reduced gradient of this rank's parts, bucket after bucket
  torch::Tensor wire_;        // bf16: the padded group on the wire (gradients, then a sharded step's updates)
  torch::Tensor wire_shard_;  // sharded bf16: this rank's parts of the reduced gradients
  torch::Tensor exp_avg_, exp_avg_sq_;
  std::int64_t steps_ = 0;
};

}  // namespace recvae
