#pragma once
// Item-item products of the training matrix, G = X^T X, for the linear models (EASE; SLIM and
// ImplicitSLIM later): each rank sums its own rows, one chunked reduction adds the ranks (Note
// [Distributed Gram] in gram.cpp).
#include <torch/torch.h>

#include <cstdint>

namespace recvae {

struct CsrMatrix;
class Communicator;

/// X^T X of `rows` (float64 [cols, cols], dense) on the host, computed with `threads` threads;
/// the result does not depend on the thread count.
torch::Tensor local_gram(const CsrMatrix& rows, int threads);
/// Sums `g` (float64, contiguous, the same shape on every rank) over the ranks in place, in
/// slices of at most `chunk_bytes`.
void reduce_gram(torch::Tensor& g, Communicator& comm, std::int64_t chunk_bytes = 64 << 20);
/// G of the whole training matrix: this rank's local_gram, reduced over the ranks (a collective).
/// Rank 0 reports its size and time.
torch::Tensor distributed_gram(const CsrMatrix& rows, Communicator& comm, int threads);
/// Bytes of one dense float64 items x items matrix.
double gram_bytes(std::int64_t items);

}  // namespace recvae
