#pragma once
// SLIM (Ning and Karypis, ICDM 2011): a sparse, non-negative item-item matrix W with a zero
// diagonal, one column per item, each the solution of an elastic-net regression of the item's
// column of X on the others, solved on the Gram matrix (Note [SLIM on the Gram matrix]).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/models/closed_form.h"
#include "recvae/util/config.h"

namespace recvae {

/// `slim:` SLIM (Ning and Karypis 2011), solved column by column on the distributed Gram matrix.
struct SLIMConfig : Section<SLIMConfig> {
  static constexpr const char* kName = "slim";
  static constexpr const char* kSummary =
      "SLIM (Ning and Karypis 2011): sparse non-negative item-item weights, column by column on the Gram matrix";
  std::vector<double> l1{1.0};   ///< L1 weights of every column's regression (a grid with l2)
  std::vector<double> l2{10.0};  ///< L2 weights; every (l1, l2) pair is fitted from one G, the best on validation kept
  int max_sweeps = 100;          ///< coordinate-descent sweeps per column at most
  double tolerance = 1e-4;       ///< a column is done when no weight moves by more in a sweep
  double memory_limit_gb =
      0;  ///< refuse a fit whose Gram matrix needs more per rank; 0: 80% of the node's, shared by its ranks
  std::string precision = "float32";  ///< float32 | float64: the Gram matrix (float32: exact counts below 2^24)
  void declare(KeyTable& keys) override;
};
class Communicator;

/// The non-zeros of one column of W.
struct SparseColumn {
  std::vector<std::int32_t> rows;  ///< item of each non-zero, ascending
  std::vector<float> values;       ///< its weight (> 0)
  int sweeps = 0;                  ///< coordinate-descent sweeps used
  std::int64_t candidates = 0;     ///< items with G_kj > l1, the only ones that can be non-zero
};

/// Column j of SLIM from G = X^T X (float64 or float32 [n, n], of a non-negative X): argmin over
/// w >= 0 with w_j = 0 of 1/2 |x_j - X w|^2 + l2/2 |w|^2 + l1 sum(w), by cyclic coordinate descent
/// over the items with G_kj > l1 until no weight moves by more than `tolerance` in a sweep (at
/// most `max_sweeps`).
SparseColumn slim_column(const torch::Tensor& gram, std::int64_t j, double l1, double l2, int max_sweeps,
                         double tolerance);

/// The estimated cost |C_j|^2 + n of every column j of G (C_j: its candidates, G_kj > l1), the
/// scan split over the ranks and combined (a collective): the weights of the ranks' column ranges.
std::vector<std::int64_t> slim_column_costs(const torch::Tensor& gram, double l1, Communicator& comm, int threads);

/// SLIM behind the Model interface: a closed-form model (Note [Closed-form models]) whose item
/// columns are split across the ranks and gathered for evaluation.
class SLIMModel final : public ClosedFormModel {
 public:
  /// Checks that G fits in slim.memory_limit_gb (default: the rank's share of the node).
  SLIMModel(const SLIMConfig& config, const ModelContext& ctx);
  std::string type() const override { return "slim"; }
  torch::Tensor scores(const SparseBatch& fold_in) override;
  /// One per (l1, l2) of the grid (slim.l1 x slim.l2, l1 outer).
  int fit_candidates() const override { return static_cast<int>(grid_.size()); }
  /// Stops between columns when ctx.should_stop says so (Note [Resumable fits]).
  std::string fit(int candidate, const FitContext& ctx) override;
  std::string fit_name(int candidate) const override;
  /// int64 [items + 1]: the candidate, then 1 for every column solved; undefined when finished.
  torch::Tensor fit_progress() const override { return progress_; }
  void restore_fit_progress(const torch::Tensor& progress) override {
    progress_ = progress.to(torch::kLong).cpu().contiguous();
  }
  void release_fit() override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override { return {{"items", items_}}; }
  /// W as a dense [items, items] matrix (tests; small item counts only).
  torch::Tensor dense_weights() const;

 private:
  torch::Tensor rows_, cols_, values_;           // buffers of module_: saved as best_model.pt
  torch::Tensor transposed_;                     // sparse W^T, for scores
  std::vector<std::pair<double, double>> grid_;  // (l1, l2) of each candidate
  torch::Tensor gram_;                           // G, computed by the first fit and kept for the others
  torch::Tensor progress_;                       // fit_progress()
  double tolerance_;
  int max_sweeps_;
  std::int64_t items_;
  torch::Device device_;
  torch::ScalarType dtype_;  // of G (slim.precision)
};

/// SLIM from config.section<SLIMConfig>().
std::unique_ptr<SLIMModel> make_slim(const Config& config, const ModelContext& ctx);

}  // namespace recvae
