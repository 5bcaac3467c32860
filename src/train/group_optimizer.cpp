#include "recvae/train/group_optimizer.h"

#include <algorithm>
#include <stdexcept>

#include "recvae/train/row_adam.h"

namespace recvae {

// Note [Sharded optimizer]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// With dist.optimizer: replicated every rank all-reduces a group's whole gradient buffer and runs
// Adam over the whole group, so N ranks do N times the optimiser work and hold N copies of its
// state. With dist.optimizer: sharded (ZeRO stage 1) the buffers are padded to a multiple of N
// and cut into N equal shards: a reduce-scatter leaves rank r the summed gradient of shard r, rank
// r runs Adam on shard r only (its moments are 1/N of the group), and an all-gather of the
// parameter buffer gives every rank the updated group. The bytes on the wire are those of the
// all-reduce (a ring all-reduce is a reduce-scatter followed by an all-gather); the Adam time and
// state shrink N-fold. Adam is element-wise, so each element is updated by the same operations
// on the same values as in the replicated step: the two settings train the same model, and a
// checkpoint (which holds the whole group's moments, gathered) resumes under either at any world
// size. With dist.grad_dtype: bf16 the gradients cross the wire as bfloat16 (half the bytes of
// the reduction; each pairwise sum is formed in fp32 and rounded), and are widened to fp32 before
// Adam. A sharded step then all-gathers bf16 *updates* instead of fp32 parameters: the owner of a
// shard rounds Adam's update of each element to bf16 (a relative error under 2^-8 of one step,
// not of the parameter) and every rank, the owner too, adds the same rounded updates to the same
// fp32 parameters, so replicas stay bit-identical (Note [Snapshot check]) with half the bytes
// both ways. Rounding depends on the number of ranks, so bf16 gives up exact world-size
// invariance for bytes (docs/performance.md has its measured effect on NDCG@100).

namespace {

// target += widened bf16 `updates` (one pass on the CPU).
void add_bf16(torch::Tensor target, const torch::Tensor& updates) {
  if (!target.device().is_cpu()) {
    target.add_(updates.to(torch::kFloat32));
    return;
  }
  float* t = target.data_ptr<float>();
  const auto* u = updates.data_ptr<at::BFloat16>();
  at::parallel_for(0, target.numel(), 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) t[i] = t[i] + static_cast<float>(u[i]);
  });
}

}  // namespace

// Note [Gradient buckets]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// With dist.bucket_mb > 0 a group's flat buffers are cut, at parameter boundaries, into buckets
// of at least that many megabytes of fp32 gradients (a parameter is never split: backward hands
// over its whole gradient at once, so a part of it would be ready no sooner), and each bucket
// crosses the wire as a collective of its own, so that a bucket can travel while backward is
// still producing the others (Note [Overlapped gradient sync] in overlapped_sync.cpp). With 0 the
// whole group is one bucket, as before buckets existed. When sharded, every bucket's length is a
// multiple of N and rank r owns the r-th N-th of *every* bucket: a reduce-scatter per bucket
// leaves it the summed gradient of those parts, which it keeps one after another in its state
// tensors (GradBucket::state_lo). Adam is element-wise, so which elements a rank owns changes
// nothing in the update, and checkpoints hold the whole group's moments in buffer order, so a
// run resumes with other buckets, another optimiser setting or another world size.

GroupOptimizer::GroupOptimizer(GradGroup& group, double lr, const SyncOptions& options, Communicator& comm)
    : group_(group), lr_(lr), options_(options), comm_(comm) {
  options_.sharded = options.sharded && comm.size() > 1;  // one rank: the whole group is its shard
  const std::int64_t padded = group_.flat.numel(), n = comm_.size();
  const std::int64_t multiple = options_.sharded ? n : 1;
  if (padded % multiple != 0) throw std::logic_error("a sharded group must be bound to a multiple of N elements");
  // Bucket ends: after the parameter that brings a bucket to the target, rounded up to a multiple of N.
  std::vector<std::int64_t> ends;
  if (options_.bucket_bytes > 0) {
    const std::int64_t target =
        std::max<std::int64_t>(1, options_.bucket_bytes / static_cast<std::int64_t>(sizeof(float)));
    std::int64_t off = 0, start = 0;
    for (const auto& p : group_.params) {
      off += p.numel();
      if (off - start < target) continue;
      const std::int64_t end = (off + multiple - 1) / multiple * multiple;
      if (end >= padded) break;
      ends.push_back(end);
      start = end;
    }
  }
  ends.push_back(padded);
  std::int64_t lo = 0;
  for (const std::int64_t end : ends) {
    GradBucket b;
    b.lo = lo;
    b.len = end - lo;
    b.own_len = b.len / multiple;
    b.own_lo = b.lo + (options_.sharded ? b.own_len * comm_.rank() : 0);
    b.state_lo = len_;
    len_ += b.own_len;
    buckets_.push_back(b);
    lo = end;
  }
  if (options_.sharded) {
    grad_shard_ = torch::zeros({len_}, group_.flat.options());
    if (options_.wire == WireType::kBFloat16)
      wire_shard_ = torch::zeros({len_}, group_.flat.options().dtype(torch::kBFloat16));
  }
  if (options_.wire == WireType::kBFloat16 && comm_.size() > 1)
    wire_ = torch::zeros({padded}, group_.flat.options().dtype(torch::kBFloat16));
  exp_avg_ = torch::zeros({len_}, group_.flat.options());
  exp_avg_sq_ = torch::zeros({len_}, group_.flat.options());
}

void GroupOptimizer::count(CommTally& tally, std::int64_t payload, double ring_factor) const {
  const double n = comm_.size();
  tally.payload_bytes += payload;
  tally.wire_bytes += static_cast<std::int64_t>(ring_factor * (n - 1) / n * static_cast<double>(payload));
  tally.collectives += 1;
}

std::vector<std::size_t> GroupOptimizer::reduction_order() const {
  std::vector<std::size_t> order(buckets_.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = order.size() - 1 - k;
  return order;
}

void GroupOptimizer::reduce(CommTally& tally) {
  for (const std::size_t k : reduction_order()) {
    stage_bucket(k);
    exchange_bucket(k, tally);
  }
}

void GroupOptimizer::stage_bucket(std::size_t k) {
  if (comm_.size() == 1 || options_.wire != WireType::kBFloat16) return;
  torch::NoGradGuard guard;
  const GradBucket& b = buckets_.at(k);
  wire_.narrow(0, b.lo, b.len).copy_(group_.flat.narrow(0, b.lo, b.len));
}

void GroupOptimizer::exchange_bucket(std::size_t k, CommTally& tally) {
  if (comm_.size() == 1) return;
  torch::NoGradGuard guard;
  const GradBucket& b = buckets_.at(k);
  const bool bf16 = options_.wire == WireType::kBFloat16;
  const std::int64_t payload = b.len * static_cast<std::int64_t>(wire_bytes(options_.wire));
  torch::Tensor grads = group_.flat.narrow(0, b.lo, b.len);
  torch::Tensor wire = bf16 ? wire_.narrow(0, b.lo, b.len) : torch::Tensor();
  if (!options_.sharded) {
    allreduce_tensor(bf16 ? wire : grads, comm_);
    if (bf16) grads.copy_(wire);
    count(tally, payload, 2.0);
    return;
  }
  if (bf16) {
    reduce_scatter_tensor(wire, state(wire_shard_, b), comm_);
    state(grad_shard_, b).copy_(state(wire_shard_, b));
  } else {
    reduce_scatter_tensor(grads, state(grad_shard_, b), comm_);
  }
  count(tally, payload, 1.0);
}

void GroupOptimizer::before_penalty() {
  if (options_.sharded) group_.flat.zero_();
}

void GroupOptimizer::after_penalty() {
  torch::NoGradGuard guard;
  if (!options_.sharded) return;
  for (const GradBucket& b : buckets_) state(grad_shard_, b).add_(own(group_.flat, b));
}

void GroupOptimizer::update() {
  ++steps_;
  if (!options_.sharded) {
    adam_update(group_.flat_param, group_.flat, exp_avg_, exp_avg_sq_, steps_, lr_);
    return;
  }
  for (const GradBucket& b : buckets_) {
    if (options_.wire == WireType::kBFloat16)
      adam_update_bf16(own(group_.flat_param, b), state(grad_shard_, b), state(exp_avg_, b), state(exp_avg_sq_, b),
                       steps_, lr_, own(wire_, b));
    else
      adam_update(own(group_.flat_param, b), state(grad_shard_, b), state(exp_avg_, b), state(exp_avg_sq_, b), steps_,
                  lr_);
  }
}

void GroupOptimizer::gather(CommTally& tally) {
  if (!options_.sharded) return;
  torch::NoGradGuard guard;
  const bool bf16 = options_.wire == WireType::kBFloat16;
  torch::Tensor& source = bf16 ? wire_ : group_.flat_param;
  for (const GradBucket& b : buckets_) {
    allgather_tensor(source.narrow(0, b.lo, b.len), comm_);
    count(tally, b.len * static_cast<std::int64_t>(bf16 ? sizeof(std::uint16_t) : sizeof(float)), 1.0);
  }
  if (bf16) add_bf16(group_.flat_param, wire_);  // every rank, the owner too, adds the same rounded updates
}

std::array<torch::Tensor, 2> GroupOptimizer::full_moments() {
  torch::NoGradGuard guard;
  std::array<torch::Tensor, 2> out;
  const torch::Tensor mine[2] = {exp_avg_, exp_avg_sq_};
  for (int i = 0; i < 2; ++i) {
    if (options_.sharded) {
      auto full = torch::zeros({group_.flat.numel()}, exp_avg_.options());
      for (const GradBucket& b : buckets_) {
        own(full, b).copy_(state(mine[i], b));
        allgather_tensor(full.narrow(0, b.lo, b.len), comm_);
      }
      out[static_cast<size_t>(i)] = full.narrow(0, 0, group_.numel).clone();
    } else {
      out[static_cast<size_t>(i)] = mine[i].narrow(0, 0, group_.numel).clone();
    }
  }
  return out;
}

void GroupOptimizer::load_moments(const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, std::int64_t steps) {
  torch::NoGradGuard guard;
  torch::Tensor* mine[2] = {&exp_avg_, &exp_avg_sq_};
  const torch::Tensor* saved[2] = {&exp_avg, &exp_avg_sq};
  for (int i = 0; i < 2; ++i) {
    mine[i]->zero_();
    // This rank's part of each bucket, clipped to the unpadded group.
    for (const GradBucket& b : buckets_) {
      const std::int64_t n = std::max<std::int64_t>(0, std::min(b.own_len, group_.numel - b.own_lo));
      if (n > 0) mine[i]->narrow(0, b.state_lo, n).copy_(saved[i]->narrow(0, b.own_lo, n));
    }
  }
  steps_ = steps;
}

}  // namespace recvae
