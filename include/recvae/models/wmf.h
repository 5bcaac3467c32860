#pragma once
// WMF / implicit ALS (Hu, Koren and Volinsky 2008, in Rendle et al.'s 2022 formulation) and PMF
// on binarised data, by distributed alternating least squares (Note [Distributed ALS] in wmf.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/data/csr.h"
#include "recvae/models/epoch_solved_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `wmf:` implicit ALS (Hu, Koren and Volinsky 2008) in Rendle et al.'s (2022) formulation.
struct WMFConfig : Section<WMFConfig> {
  static constexpr const char* kName = "wmf";
  static constexpr const char* kSummary =
      "WMF (Hu, Koren and Volinsky 2008; Rendle et al. 2022): implicit ALS, every row solved exactly";
  std::int64_t dim = 256;           ///< embedding width k
  double regularization = 0.003;    ///< lambda
  double regularization_exp = 1.0;  ///< nu: lambda (n + alpha_0 * N)^nu per row
  double unobserved_weight = 0.1;   ///< alpha_0: the weight of every (user, item) pair's squared score
  double alpha = 0.0;               ///< confidence of an observed value x: 1 + alpha * x (count data)
  double init_stddev = 0.1;         ///< factors start as N(0, init_stddev^2 / dim)
  std::string solver = "cholesky";  ///< cholesky: every row solved exactly; cg: conjugate-gradient steps (CPU)
  std::int64_t cg_steps = 3;        ///< conjugate-gradient steps per row and half-step (solver cg)
  void declare(KeyTable& keys) override;
  TrainDefaults train_defaults(const Config&) const override { return {1e-3, 0.5, 16}; }  // Rendle et al.'s epochs
};

/// `pmf:` PMF (Salakhutdinov and Mnih 2008) on binarised data: every entry observed with equal
/// weight, zeros included (the alpha_0 = 1, nu = 0 member of the WMF solver).
struct PMFConfig : Section<PMFConfig> {
  static constexpr const char* kName = "pmf";
  static constexpr const char* kSummary =
      "PMF (Salakhutdinov and Mnih 2008) on binarised data: every entry one squared error, by ALS";
  std::int64_t dim = 256;       ///< embedding width k
  double regularization = 1.0;  ///< lambda (the Gaussian priors' precision ratio)
  double init_stddev = 0.1;     ///< factors start as N(0, init_stddev^2 / dim)
  void declare(KeyTable& keys) override;
  TrainDefaults train_defaults(const Config&) const override { return {1e-3, 0.5, 16}; }
};

/// The constants of one ALS objective:
///   sum_obs a_ui (s_ui - 1)^2 + alpha_0 sum_all s_ui^2 + sum_u lambda_u |w_u|^2 + sum_i lambda_i |h_i|^2
/// with s_ui = w_u . h_i, a_ui = 1 + alpha x_ui and lambda_r = lambda (n_r + alpha_0 N)^nu (n_r:
/// the row's observations, N: the other side's count). PMF replaces the observed term by exact
/// squared error on every entry: a = 0 in the Gram part, target 1 (`observed_in_gram` false).
struct ALSObjective {
  std::int64_t dim = 0;           ///< k
  double regularization = 0;      ///< lambda
  double regularization_exp = 0;  ///< nu
  double unobserved_weight = 0;   ///< alpha_0
  double alpha = 0;               ///< confidence slope for observed values
  double init_stddev = 0.1;       ///< initial factors N(0, init_stddev^2 / k)
  bool observed_in_gram = true;   ///< false: PMF (every entry one squared error)
  int cg_steps = 0;               ///< > 0: that many conjugate-gradient steps per row instead of the exact solve
  /// lambda (n + alpha_0 * others)^nu.
  double row_regularization(std::int64_t n, std::int64_t others) const;
  /// True when every row's matrix is the same (PMF: nothing observed in the Gram part, nu = 0), so
  /// one factorisation serves all rows (Note [Rows that share one system]).
  bool rows_share_one_system() const { return !observed_in_gram && regularization_exp == 0; }
  /// How one observation of value x enters its row's system: its factor scaled by `gram` in the
  /// Gram term (sqrt(a), so that the outer product carries a; 0 for PMF) and by `rhs` on the right
  /// (t a: a for WMF, 1 for PMF).
  struct ObservationWeight {
    float gram;  ///< factor scale inside sum a f f^T
    float rhs;   ///< factor scale inside sum t a f
  };
  /// The weights of an observation of value `value` (one rule for every solver route).
  ObservationWeight observation_weight(float value) const;
};

/// For every row r of `x` (columns index the rows of `factors` [n, k]), the exact minimiser
///   (alpha_0 F^T F + lambda_r I + sum_{j in r} a_rj f_j f_j^T) w_r = sum_{j in r} t_rj f_j
/// on the factors' device: one shared factorisation when o.rows_share_one_system(), else per-row
/// LAPACK solves on the CPU where the build has LAPACK, the batched route otherwise. `gram` is
/// F^T F; `others` is N for lambda_r. Throws InputError naming row `first_row + r` when a system
/// is not positive definite. With o.cg_steps > 0 and CPU factors, each row takes that many
/// conjugate-gradient steps from `start` (the rows' current values;
/// undefined: zeros) instead (Note [Conjugate-gradient rows]).
torch::Tensor als_solve_rows(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                             const ALSObjective& o, std::int64_t others, std::int64_t first_row, const char* what,
                             const torch::Tensor& start = torch::Tensor());

/// The same solve by batched Cholesky in torch (the GPU route, and the CPU route without LAPACK).
torch::Tensor als_solve_rows_batched(const torch::Tensor& factors, const torch::Tensor& gram, const CsrMatrix& x,
                                     const ALSObjective& o, std::int64_t others, std::int64_t first_row,
                                     const char* what);

/// WMF (`wmf`) or PMF (`pmf`): solved epoch by epoch; each epoch (a user step on every rank's
/// rows, an item step on every rank's item range, two all-gathers) is one solve_epoch. The item
/// factors are the model's one parameter (replicated, saved, checkpointed); user factors are
/// recomputed from them, so a resume is exact.
class ALSModel final : public EpochSolvedModel {
 public:
  /// Reads this rank's item range of the item-major copy of train (InputError without it).
  ALSModel(std::string type, const ALSObjective& objective, const ModelContext& ctx);
  std::string type() const override { return type_; }
  torch::nn::Module& module() override { return *module_; }
  torch::Tensor scores(const SparseBatch& fold_in) override;
  /// A user step, an item step and the objective; figures: objective, user_step_seconds, item_step_seconds.
  Figures solve_epoch(int epoch, const FitContext& ctx) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;

  /// The user half-step: this rank's user factors from the item factors (returned, also kept).
  const torch::Tensor& user_step(const FitContext& ctx);
  /// The item half-step: every rank's user factors gathered, this rank's item range solved,
  /// the item factors gathered (a collective).
  void item_step(const FitContext& ctx);
  /// The objective above over every rank's rows (a collective), with the current factors.
  double objective(const FitContext& ctx);
  /// Item factors [items, k].
  const torch::Tensor& item_factors() const { return items_; }
  /// This rank's user factors [local users, k] from the last user step.
  const torch::Tensor& user_factors() const { return users_; }
  /// First item of each rank's item range, and the end (size world_size + 1).
  const std::vector<std::int64_t>& item_bounds() const { return item_bounds_; }

 private:
  torch::Tensor gathered(const torch::Tensor& local, const std::vector<std::int64_t>& bounds, FitContext& ctx);
  torch::Tensor item_gram();

  std::string type_;
  ALSObjective o_;
  std::shared_ptr<torch::nn::Module> module_;
  torch::Tensor items_;  // parameter "item_factors" of module_ (no gradient)
  torch::Tensor users_;  // this rank's rows
  std::int64_t num_items_, num_users_;
  std::vector<std::int64_t> user_bounds_, item_bounds_;
  CsrMatrix item_columns_;                 // this rank's item range of train, item-major
  std::vector<std::int64_t> item_counts_;  // observations of every item
  torch::Device device_;
  torch::Tensor gram_cache_;
  std::int64_t gram_version_ = -1;
};

/// `wmf:` as an ALSObjective.
ALSObjective wmf_objective(const WMFConfig& c);
/// `pmf:` as an ALSObjective (alpha_0 = 1, nu = 0, no observed Gram term).
ALSObjective pmf_objective(const PMFConfig& c);

/// WMF from config.section<WMFConfig>() (the split file needs the item-major copy of train).
std::unique_ptr<ALSModel> make_wmf(const Config& config, const ModelContext& ctx);
/// PMF from config.section<PMFConfig>().
std::unique_ptr<ALSModel> make_pmf(const Config& config, const ModelContext& ctx);

}  // namespace recvae
