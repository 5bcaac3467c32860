#include "recvae/batch/batch_plan.h"

#include <cstddef>
#include <numeric>

#include "recvae/batch/counter_rng.h"

namespace recvae {

std::vector<std::int64_t> pass_permutation(std::int64_t n, std::uint64_t seed, std::int64_t epoch, std::int64_t pass) {
  std::vector<std::int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  const std::uint64_t key = stream_key(
      {seed, 0x7065726dULL /* "perm" */, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(pass)});
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(uniform01(key, static_cast<std::uint64_t>(i)) * (i + 1));
    std::swap(perm[i], perm[j < i ? j : i]);
  }
  return perm;
}

std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) {
  return stream == 0 ? seed : stream_key({seed, 0x73747265616dULL /* "stream" */, stream});
}

BatchPlan::BatchPlan(std::vector<std::int64_t> permutation, std::int64_t batch_size, std::int64_t owned_lo,
                     std::int64_t owned_hi)
    : perm_(std::move(permutation)), batch_size_(batch_size), lo_(owned_lo), hi_(owned_hi) {}

std::int64_t BatchPlan::num_batches() const {
  const auto n = static_cast<std::int64_t>(perm_.size());
  return (n + batch_size_ - 1) / batch_size_;
}

LocalBatch BatchPlan::batch(std::int64_t b) const {
  LocalBatch out;
  const auto n = static_cast<std::int64_t>(perm_.size());
  const std::int64_t begin = b * batch_size_, end = std::min(n, begin + batch_size_);
  out.global_size = end - begin;
  for (std::int64_t i = begin; i < end; ++i)
    if (perm_[i] >= lo_ && perm_[i] < hi_) out.global_rows.push_back(perm_[i]);
  return out;
}

}  // namespace recvae
