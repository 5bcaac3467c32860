#pragma once
// Item-item products of the training matrix, G = X^T X, for the linear models (EASE, SLIM,
// ImplicitSLIM): each rank sums its own rows, one chunked reduction adds the ranks (Note
// [Distributed Gram] in gram.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace recvae {

struct CsrMatrix;
struct BlockCyclicColumns;
class Communicator;

/// X^T X of `rows` ([cols, cols], dense, float64 or float32) on the host, computed with
/// `threads` threads; the result does not depend on the thread count.
torch::Tensor local_gram(const CsrMatrix& rows, int threads, torch::ScalarType dtype = torch::kFloat64);
/// Sums `g` (contiguous host tensor, the same shape on every rank) over the ranks in place, in
/// slices of at most `chunk_bytes`. float64 goes through the host collective; float32 through the
/// backend's data collective, staged through `staging` memory (a GPU for NCCL).
void reduce_gram(torch::Tensor& g, Communicator& comm, std::int64_t chunk_bytes = 64 << 20,
                 torch::Device staging = torch::kCPU);
/// G of the whole training matrix: this rank's local_gram, reduced over the ranks (a collective).
/// Rank 0 reports its size and time.
torch::Tensor distributed_gram(const CsrMatrix& rows, Communicator& comm, int threads,
                               torch::ScalarType dtype = torch::kFloat64, torch::Device staging = torch::kCPU);
/// This rank's columns of G (`layout`; [layout.local_columns(), items] in `dtype`, host) from
/// every rank's rows, reduced round by round straight into the layout, so that no rank holds the
/// whole G (a collective; Note [Distributed Gram]). float32 goes through the backend's data
/// collective, staged through `staging` memory (a GPU for NCCL). Rank 0 reports its size and time.
torch::Tensor distributed_gram_block_cyclic(const CsrMatrix& rows, const BlockCyclicColumns& layout, Communicator& comm,
                                            int threads, torch::ScalarType dtype = torch::kFloat32,
                                            torch::Device staging = torch::kCPU);
/// Columns `cols` of G (float64 [items, cols.size()]) from the sparse rows of every rank,
/// without forming G (a collective): for checks of a solve that has overwritten G.
torch::Tensor distributed_gram_columns(const CsrMatrix& rows, const std::vector<std::int64_t>& cols,
                                       Communicator& comm);
/// X^T (X V) of `rows` for a dense item-major `v` (float64 host [cols, d]), computed without
/// forming X^T X, with `threads` threads; the result does not depend on the thread count.
torch::Tensor local_gram_times(const CsrMatrix& rows, const torch::Tensor& v, int threads);
/// G V over every rank's rows: local_gram_times reduced over the ranks (a collective).
torch::Tensor distributed_gram_times(const CsrMatrix& rows, const torch::Tensor& v, Communicator& comm, int threads);
/// Column sums of the whole training matrix (float64 [cols]; item popularity for binary data; a collective).
torch::Tensor distributed_item_sums(const CsrMatrix& rows, Communicator& comm);
/// Bytes of one dense items x items matrix of `element_bytes` (8: float64).
double gram_bytes(std::int64_t items, int element_bytes = 8);
/// Host bytes one rank's Gram-matrix fit may use: `configured_gb` when > 0, else 80% of the
/// node's memory divided among its `local_ranks` ranks (each holds its own copy).
double gram_memory_limit_bytes(double configured_gb, int local_ranks);

}  // namespace recvae
