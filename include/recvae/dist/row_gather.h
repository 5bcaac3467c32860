#pragma once
// The whole training matrix on every rank, for the few solvers whose work is not a sum over users
// (EASE through the users' Gram matrix: Note [Inverse through the users' Gram]).
#include "recvae/data/csr.h"

namespace recvae {

class Communicator;

/// Every rank's rows of `local` concatenated in rank order (the global row order of the
/// shards), on every rank (a collective). Throws std::logic_error when the ranks' column counts
/// differ.
CsrMatrix allgather_rows(const CsrMatrix& local, Communicator& comm);

}  // namespace recvae
