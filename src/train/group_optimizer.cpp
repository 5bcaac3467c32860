#include "recvae/train/group_optimizer.h"

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

GroupOptimizer::GroupOptimizer(GradGroup& group, double lr, const SyncOptions& options, Communicator& comm)
    : group_(group), lr_(lr), options_(options), comm_(comm) {
  options_.sharded = options.sharded && comm.size() > 1;  // one rank: the whole group is its shard
  const std::int64_t padded = group_.flat.numel();
  if (options_.sharded) {
    if (padded % comm_.size() != 0) throw std::logic_error("a sharded group must be bound to a multiple of N elements");
    len_ = padded / comm_.size();
    lo_ = len_ * comm_.rank();
    grad_shard_ = torch::zeros({len_}, group_.flat.options());
    if (options_.wire == WireType::kBFloat16)
      wire_shard_ = torch::zeros({len_}, group_.flat.options().dtype(torch::kBFloat16));
  } else {
    lo_ = 0;
    len_ = padded;
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

void GroupOptimizer::reduce(CommTally& tally) {
  if (comm_.size() == 1) return;
  torch::NoGradGuard guard;
  const bool bf16 = options_.wire == WireType::kBFloat16;
  const std::int64_t payload = group_.flat.numel() * static_cast<std::int64_t>(wire_bytes(options_.wire));
  if (bf16) wire_.copy_(group_.flat);
  if (!options_.sharded) {
    allreduce_tensor(bf16 ? wire_ : group_.flat, comm_);
    if (bf16) group_.flat.copy_(wire_);
    count(tally, payload, 2.0);
    return;
  }
  if (bf16) {
    reduce_scatter_tensor(wire_, wire_shard_, comm_);
    grad_shard_.copy_(wire_shard_);
  } else {
    reduce_scatter_tensor(group_.flat, grad_shard_, comm_);
  }
  count(tally, payload, 1.0);
}

void GroupOptimizer::before_penalty() {
  if (options_.sharded) group_.flat.zero_();
}

void GroupOptimizer::after_penalty() {
  torch::NoGradGuard guard;
  if (options_.sharded) grad_shard_.add_(shard_of(group_.flat));
}

void GroupOptimizer::update() {
  ++steps_;
  if (!options_.sharded) {
    adam_update(group_.flat_param, group_.flat, exp_avg_, exp_avg_sq_, steps_, lr_);
  } else if (options_.wire == WireType::kBFloat16) {
    adam_update_bf16(shard_of(group_.flat_param), grad_shard_, exp_avg_, exp_avg_sq_, steps_, lr_, shard_of(wire_));
  } else {
    adam_update(shard_of(group_.flat_param), grad_shard_, exp_avg_, exp_avg_sq_, steps_, lr_);
  }
}

void GroupOptimizer::gather(CommTally& tally) {
  if (!options_.sharded) return;
  torch::NoGradGuard guard;
  if (options_.wire == WireType::kBFloat16) {
    allgather_tensor(wire_, comm_);
    count(tally, wire_.numel() * static_cast<std::int64_t>(sizeof(std::uint16_t)), 1.0);
    add_bf16(group_.flat_param, wire_);  // every rank, the owner too, adds the same rounded updates
    return;
  }
  allgather_tensor(group_.flat_param, comm_);
  count(tally, group_.flat_param.numel() * static_cast<std::int64_t>(sizeof(float)), 1.0);
}

std::array<torch::Tensor, 2> GroupOptimizer::full_moments() {
  torch::NoGradGuard guard;
  std::array<torch::Tensor, 2> out;
  const torch::Tensor mine[2] = {exp_avg_, exp_avg_sq_};
  for (int i = 0; i < 2; ++i) {
    if (options_.sharded) {
      auto full = torch::zeros({group_.flat.numel()}, exp_avg_.options());
      shard_of(full).copy_(mine[i]);
      allgather_tensor(full, comm_);
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
    // This rank's part of the unpadded group: [lo_, min(lo_ + len_, numel)).
    const std::int64_t n = std::max<std::int64_t>(0, std::min(len_, group_.numel - lo_));
    if (n > 0) mine[i]->narrow(0, 0, n).copy_(saved[i]->narrow(0, lo_, n));
  }
  steps_ = steps;
}

}  // namespace recvae
