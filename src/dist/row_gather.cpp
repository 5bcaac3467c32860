#include "recvae/dist/row_gather.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "recvae/dist/comm.h"

namespace recvae {

CsrMatrix allgather_rows(const CsrMatrix& local, Communicator& comm) {
  for (std::int64_t cols : allgather_host(comm, std::vector<std::int64_t>{local.cols}))
    if (cols != local.cols)
      throw std::logic_error("allgather_rows: a rank holds " + std::to_string(cols) + " columns, this one " +
                             std::to_string(local.cols));
  std::vector<std::int64_t> lengths(static_cast<std::size_t>(local.rows));
  // row_nnz, not indptr itself: a shard read from the file may keep the file's offsets (indptr[0] > 0).
  for (std::int64_t r = 0; r < local.rows; ++r) lengths[static_cast<std::size_t>(r)] = local.row_nnz(r);
  CsrMatrix all = CsrMatrix::empty(0, local.cols);
  const std::vector<std::int64_t> all_lengths = allgather_host(comm, lengths);
  all.indices = allgather_host(comm, local.indices);
  all.data = allgather_host(comm, local.data);
  all.rows = static_cast<std::int64_t>(all_lengths.size());
  all.indptr.assign(all_lengths.size() + 1, 0);
  for (std::size_t r = 0; r < all_lengths.size(); ++r) all.indptr[r + 1] = all.indptr[r] + all_lengths[r];
  return all;
}

}  // namespace recvae
