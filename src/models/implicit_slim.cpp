#include "recvae/models/implicit_slim.h"

#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/linalg/gram.h"
#include "recvae/util/config.h"

namespace recvae {

// Note [ImplicitSLIM]
// ~~~~~~~~~~~~~~~~~~~
// The RecVAE authors' `implicit_slim(W, X, lambda, alpha, thr)` (utils.py) maps embeddings W
// ([d, items]) to alpha W A^T (C - C A^T (I/alpha + A C A^T)^-1 A C) with A = W restricted to
// the items with at least `thr` interactions (other columns zeroed), D = diag(1/(counts + lambda))
// and C the product (lambda A + A G) D^2 (lambda I + G) of the closed form, G = X^T X. We keep
// everything item-major (E = W^T, [items, d], the layout of our first layer and decoder), so the
// two products with G are G V for [items, d] matrices V: computed as X^T (X V) over each rank's
// sparse rows and summed by one reduction (models/gram.h), never as a dense items x items G. The
// d x d system is solved on every rank from identical reduced inputs, so the replicas stay equal.
// Differences from the authors' code: they round A to float16 (a memory saving on the GPU) and
// compute in float32; we compute in float64 on the host, so our update is the exact formula.

torch::Tensor implicit_slim(const torch::Tensor& e_in, const CsrMatrix& rows, Communicator& comm,
                            const ImplicitSLIMConfig& c, int threads) {
  torch::NoGradGuard guard;
  const torch::Tensor e = e_in.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const torch::Tensor counts = distributed_item_sums(rows, comm);
  const torch::Tensor d2 = (counts + c.lambda).reciprocal().pow(2).unsqueeze(1);
  const torch::Tensor a = e * (counts >= c.threshold).to(torch::kFloat64).unsqueeze(1);
  const torch::Tensor m = d2 * (c.lambda * a + distributed_gram_times(rows, a.contiguous(), comm, threads));
  const torch::Tensor ct = c.lambda * m + distributed_gram_times(rows, m.contiguous(), comm, threads);  // C^T
  const torch::Tensor s = ct.t().matmul(a);  // A C A^T, [d, d]
  const auto eye = torch::eye(s.size(0), s.options());
  const torch::Tensor k = torch::linalg_solve((eye / c.alpha + s).t(), s.t());  // (S (I/alpha + S)^-1)^T
  const torch::Tensor act = ct - ct.matmul(k);
  return c.alpha * act.matmul(a.t().matmul(e));
}

}  // namespace recvae
