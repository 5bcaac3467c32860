#include "recvae/data/sharding.h"

#include <algorithm>

#include "recvae/data/h5_dataset.h"

namespace recvae {
namespace {

// First row whose boundary is at or past fraction k/size of the work. Work counts every row's
// non-zeros plus one, so empty rows are spread too and rows alone balance an all-empty split.
std::int64_t boundary(const std::vector<std::int64_t>& indptr, int k, int size) {
  const auto rows = static_cast<std::int64_t>(indptr.size()) - 1;
  if (k <= 0) return 0;
  if (k >= size) return rows;
  const long double total = static_cast<long double>(indptr.back() - indptr.front() + rows);
  const long double target = total * k / size;
  // work(r) = indptr[r] - indptr[0] + r is increasing in r: binary search the first r with work >= target.
  std::int64_t lo = 0, hi = rows;
  while (lo < hi) {
    std::int64_t mid = (lo + hi) / 2;
    if (static_cast<long double>(indptr[mid] - indptr[0] + mid) >= target)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

}  // namespace

RowRange balanced_range(const std::vector<std::int64_t>& indptr, int rank, int size) {
  return {boundary(indptr, rank, size), boundary(indptr, rank + 1, size)};
}

RowRange shard_of(const SplitFile& file, const std::string& split, int rank, int size) {
  const std::int64_t rows = file.num_rows(split);
  return balanced_range(file.read_indptr(split, 0, rows), rank, size);
}

}  // namespace recvae
