#include "recvae/linalg/block_cyclic.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace recvae {

BlockCyclicColumns::BlockCyclicColumns(std::int64_t n_, std::int64_t block_, int ranks_, int rank_)
    : n(n_), block(block_), ranks(ranks_), rank(rank_) {
  if (n < 0 || block < 1 || ranks < 1 || rank < 0 || rank >= ranks)
    throw std::invalid_argument("BlockCyclicColumns: n " + std::to_string(n) + ", block " + std::to_string(block) +
                                ", rank " + std::to_string(rank) + " of " + std::to_string(ranks));
}

std::int64_t BlockCyclicColumns::default_block(std::int64_t n, int ranks) {
  return std::max<std::int64_t>(1, std::min<std::int64_t>(64, n / std::max(1, ranks)));
}

std::int64_t BlockCyclicColumns::columns_of(int r) const {
  const std::int64_t blocks = n / block, rest = n % block;
  std::int64_t count = (blocks / ranks) * block;
  const std::int64_t extra = blocks % ranks;  // ranks 0..extra-1 hold one more whole block
  if (r < extra)
    count += block;
  else if (r == extra)
    count += rest;
  return count;
}

std::vector<std::int64_t> BlockCyclicColumns::global_columns() const {
  std::vector<std::int64_t> cols(static_cast<size_t>(local_columns()));
  for (std::int64_t c = 0; c < local_columns(); ++c) cols[static_cast<size_t>(c)] = global_column(c);
  return cols;
}

}  // namespace recvae
