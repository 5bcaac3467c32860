#pragma once
// Contiguous row ranges per rank with balanced non-zero counts.
#include <cstdint>
#include <string>
#include <vector>

namespace recvae {

class SplitFile;

/// A half-open row range [lo, hi).
struct RowRange {
  std::int64_t lo = 0;  ///< first row
  std::int64_t hi = 0;  ///< one past the last row
  /// Number of rows.
  std::int64_t size() const { return hi - lo; }
};

/// Range of rank `rank` of `size` given a split's full indptr (rows + 1 entries): boundaries are
/// placed where the cumulative non-zero count crosses k/size of the total (rows break ties), so
/// every rank gets about the same work. Ranges are contiguous, disjoint and cover all rows.
RowRange balanced_range(const std::vector<std::int64_t>& indptr, int rank, int size);

/// balanced_range for a split of a file (reads only the split's indptr).
RowRange shard_of(const SplitFile& file, const std::string& split, int rank, int size);

}  // namespace recvae
