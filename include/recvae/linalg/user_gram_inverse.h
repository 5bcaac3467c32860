#pragma once
// (X^T X + lambda I)^-1 through the users' Gram matrix X X^T, which is the smaller of the two
// when a catalogue has more items than training users (Note [Inverse through the users' Gram]).
#include <torch/torch.h>

#include <cstdint>

namespace recvae {

struct CsrMatrix;

/// Seconds spent in each step of inverse_through_user_gram, for progress lines.
struct UserGramInverseTimes {
  double gram = 0;     ///< X X^T
  double inverse = 0;  ///< (lambda I + X X^T)^-1
  double fill = 0;     ///< P from it, mirrored
};

/// P = (X^T X + lambda I)^-1 ([x.cols, x.cols], `dtype` float32 or float64, host, exactly
/// symmetric) for the whole training matrix `x` (users x items), from the inverse of
/// lambda I + X X^T ([x.rows, x.rows]) with `threads` threads. Returns 0, or the order of the
/// first leading minor of lambda I + X X^T that is not positive definite (`p` is then undefined).
std::int64_t inverse_through_user_gram(const CsrMatrix& x, double lambda, torch::ScalarType dtype, int threads,
                                       torch::Tensor& p, UserGramInverseTimes* times = nullptr);
/// Peak host bytes of inverse_through_user_gram for `users` x `items` in `element_bytes` precision.
double inverse_through_user_gram_bytes(std::int64_t users, std::int64_t items, int element_bytes);

}  // namespace recvae
