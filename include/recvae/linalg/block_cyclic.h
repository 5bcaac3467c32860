#pragma once
// Which rank holds which columns of an items x items matrix split over the ranks: ScaLAPACK's
// block-cyclic layout on a one-row process grid (Note [Distributed EASE] in models/ease.cpp).
#include <cstdint>
#include <vector>

namespace recvae {

/// Columns of an n x n matrix dealt out in blocks of `block` to `ranks` ranks in turn: block b
/// (columns [b * block, (b + 1) * block)) belongs to rank b mod ranks. A rank stores its columns
/// in ascending order as the rows of a [local_columns(), n] row-major tensor, which is ScaLAPACK's
/// column-major local array with leading dimension n.
struct BlockCyclicColumns {
  std::int64_t n = 0;      ///< order of the matrix
  std::int64_t block = 1;  ///< columns per block (ScaLAPACK's NB)
  int ranks = 1;           ///< ranks over which the blocks are dealt
  int rank = 0;            ///< this rank

  /// The layout of `n` columns in blocks of `block` over `ranks` ranks, seen from `rank`.
  BlockCyclicColumns(std::int64_t n, std::int64_t block, int ranks, int rank);
  /// The block size for `n` columns over `ranks` ranks: 64 (ScaLAPACK's usual), smaller when
  /// that leaves a rank without columns.
  static std::int64_t default_block(std::int64_t n, int ranks);
  /// Rank that holds global column `j`.
  int owner(std::int64_t j) const { return static_cast<int>((j / block) % ranks); }
  /// Columns that rank `r` holds (ScaLAPACK's NUMROC).
  std::int64_t columns_of(int r) const;
  /// Columns this rank holds.
  std::int64_t local_columns() const { return columns_of(rank); }
  /// Global column of this rank's local column `c`.
  std::int64_t global_column(std::int64_t c) const { return ((c / block) * ranks + rank) * block + c % block; }
  /// Local index of global column `j` on its owner.
  std::int64_t local_index(std::int64_t j) const { return (j / block / ranks) * block + j % block; }
  /// Every global column this rank holds, ascending.
  std::vector<std::int64_t> global_columns() const;
};

}  // namespace recvae
