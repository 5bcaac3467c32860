#pragma once
// EASE (Steck, WWW 2019): an item-item weight matrix B with a zero diagonal, in closed form from
// the Gram matrix: P = (G + lambda I)^-1, B = I - P diag(1 / diag(P)). Scores of a user are x_u B.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "recvae/models/closed_form.h"

namespace recvae {

struct EASEConfig;

/// B from a Gram matrix (float64 [items, items]) and lambda > 0, in float64: Cholesky of
/// G + lambda I, its inverse P, B = -P / diag(P) column-wise, diag(B) = 0. Throws
/// InputError when G + lambda I is not positive definite or the inverse fails its residual
/// check (max |(G + lambda I) P - I| over sampled columns).
torch::Tensor ease_weights(const torch::Tensor& gram, double lambda);

/// EASE behind the Model interface: no passes; one candidate fit per lambda (Note [Closed-form
/// models] in model.cpp), the Gram matrix computed once and kept for the next lambda.
class EASEModel final : public ClosedFormModel {
 public:
  /// Checks that G, its inverse and B fit in ease.memory_limit_gb; B is allocated at fit time.
  EASEModel(const EASEConfig& config, const ModelContext& ctx);
  std::string type() const override { return "ease"; }
  torch::Tensor scores(const SparseBatch& fold_in) override;
  int fit_candidates() const override { return static_cast<int>(lambdas_.size()); }
  std::string fit(int candidate, const FitContext& ctx) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override { return {{"items", items_}}; }
  /// The fitted weights [items, items] (tests).
  const torch::Tensor& weights() const { return b_; }

 private:
  torch::Tensor b_;  // buffer "B" of module_: saved as best_model.pt
  torch::Tensor gram_;  // float64, kept between the lambdas
  std::vector<double> lambdas_;
  std::int64_t items_;
  torch::Device device_;
};

}  // namespace recvae
