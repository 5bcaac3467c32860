#pragma once
// ImplicitSLIM (Shenbin and Nikolenko 2023): item embeddings replaced by their projection
// through an implicit SLIM model of the training matrix, computed from products with X^T X
// that every rank sums over its own users (Note [ImplicitSLIM] in implicit_slim.cpp).
#include <torch/torch.h>

namespace recvae {

struct CsrMatrix;
struct ImplicitSLIMConfig;
class Communicator;

/// The ImplicitSLIM update of item-major embeddings `e` ([items, d], any dtype and device),
/// returned as float64 on the host. `rows` are this rank's training rows; a collective (two
/// distributed products G V with d columns and one reduction of the item counts).
torch::Tensor implicit_slim(const torch::Tensor& e, const CsrMatrix& rows, Communicator& comm,
                            const ImplicitSLIMConfig& config, int threads);

}  // namespace recvae
