#pragma once
// EASE (Steck, WWW 2019): an item-item weight matrix B with a zero diagonal, in closed form from
// the Gram matrix: P = (G + lambda I)^-1, B = I - P diag(1 / diag(P)). Scores of a user are x_u B.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/linalg/block_cyclic.h"
#include "recvae/models/closed_form.h"
#include "recvae/models/column_shards.h"
#include "recvae/util/config.h"

namespace recvae {

/// `ease:` EASE (Steck 2019), fitted in closed form from the distributed Gram matrix.
struct EASEConfig : Section<EASEConfig> {
  static constexpr const char* kName = "ease";
  static constexpr const char* kSummary =
      "EASE (Steck 2019): closed-form item-item weights from the Gram matrix, a lambda grid fitted in turn";
  std::vector<double> lambda{500.0};  ///< L2 weights to fit; the best on validation NDCG@100 is kept
  double memory_limit_gb = 0;         ///< refuse a fit needing more host memory per rank; 0: 80% of the node's
  std::string precision = "float64";  ///< float64 | float32: the Gram matrix, its inverse and B
  std::string solver = "auto";        ///< auto | replicated | distributed | dual (Note [Distributed EASE])
  void declare(KeyTable& keys) override;
};

/// B from a Gram matrix ([items, items], float64 or float32, host or GPU) and lambda > 0, in
/// the Gram matrix's precision: P = (G + lambda I)^-1, B = -P / diag(P) column-wise, diag(B) = 0.
/// Throws InputError when G + lambda I is not positive definite or the inverse fails its
/// residual check (max |(G + lambda I) P - I| over sampled columns).
torch::Tensor ease_weights(const torch::Tensor& gram, double lambda);
/// ease_weights on `a` = G + lambda I itself, which becomes B (Note [In-place SPD inverse]).
/// `a_columns` (float64 host [items, cols.size()]) are the columns `cols` of G + lambda I, for
/// the residual check.
void ease_weights_in_place(torch::Tensor& a, double lambda, const torch::Tensor& a_columns,
                           const std::vector<std::int64_t>& cols, int threads);
/// Peak host bytes per rank of an EASE fit on `items` items ("float64" or "float32") on `device`.
double ease_fit_bytes(std::int64_t items, const std::string& precision, const torch::Device& device);
/// Peak host bytes per rank of an EASE fit split over `ranks` ranks (ease.solver: distributed).
double ease_distributed_fit_bytes(std::int64_t items, const std::string& precision, int ranks);

/// Peak host bytes per rank of an EASE fit through the users' Gram matrix (ease.solver: dual).
double ease_dual_fit_bytes(std::int64_t users, std::int64_t items, const std::string& precision);

/// EASE behind the Model interface: no passes; one candidate fit per lambda (Note [Closed-form
/// models] in model.cpp); G is recomputed for each (cheap next to the solve), never kept.
class EASEModel final : public ClosedFormModel, public ColumnShardedScores {
 public:
  /// Picks the solver (ease.solver; auto: replicated while G fits, else distributed) and checks
  /// that the fit fits in ease.memory_limit_gb; B is allocated at fit time.
  EASEModel(const EASEConfig& config, const ModelContext& ctx);
  std::string type() const override { return "ease"; }
  torch::Tensor scores(const SparseBatch& fold_in) override;
  ColumnShardedScores* column_shards() override { return layout_ ? this : nullptr; }
  const std::vector<std::int64_t>& local_items() const override { return local_items_; }
  torch::Tensor local_scores(const CsrMatrix& rows, int threads) override;
  const torch::Tensor& local_weights() const override { return b_local_; }
  std::string weights_name() const override { return "B"; }
  /// Whether B is split over the ranks (ease.solver resolved).
  bool distributed() const { return layout_ != nullptr; }
  /// Whether the inverse goes through the users' Gram matrix (ease.solver resolved).
  bool dual() const { return dual_; }
  int fit_candidates() const override { return static_cast<int>(lambdas_.size()); }
  std::string fit(int candidate, const FitContext& ctx) override;
  std::string fit_name(int candidate) const override;
  void release_fit() override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override { return {{"items", items_}}; }
  /// The fitted weights [items, items] (tests).
  const torch::Tensor& weights() const { return b_; }

 private:
  torch::Tensor b_;  // buffer "B" of module_, in the solve's precision: saved as best_model.pt
  // Distributed solver: this rank's columns of B (not a buffer: module() holds what is
  // replicated), their layout and global items.
  torch::Tensor b_local_;
  std::unique_ptr<BlockCyclicColumns> layout_;
  std::vector<std::int64_t> local_items_;
  void fit_distributed(double lambda, const FitContext& ctx);
  bool dual_ = false;  // Note [Inverse through the users' Gram]
  void fit_dual(double lambda, const FitContext& ctx);
  std::vector<double> lambdas_;
  std::int64_t items_;
  torch::Device device_;
  torch::ScalarType dtype_;  // ease.precision
};

/// EASE from config.section<EASEConfig>().
std::unique_ptr<EASEModel> make_ease(const Config& config, const ModelContext& ctx);

}  // namespace recvae
