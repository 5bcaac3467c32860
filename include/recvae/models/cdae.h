#pragma once
// CDAE (Wu et al., WSDM 2016): h = sigmoid(x~ W + V_u + b), logits = h W' + b', a logistic loss
// over every item of the row, a per-user vector V_u owned by the rank that owns the user (Note
// [Per-user parameters] in cdae.cpp).
#include <torch/torch.h>

#include "recvae/models/step_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `cdae:` CDAE (Wu et al. 2016).
struct CDAEConfig : Section<CDAEConfig> {
  static constexpr const char* kName = "cdae";
  static constexpr const char* kSummary =
      "CDAE (Wu et al. 2016): denoising autoencoder with a per-user vector and a logistic loss";
  std::int64_t hidden_dim = 200;  ///< hidden width K
  double l2 = 1e-5;               ///< weight penalty l2/2 * |W|^2 per step and l2/2 * |V_u|^2 per user
  int foldin_steps = 20;          ///< held-out users: Adam steps fitting V_u on the fold-in, network frozen
  double foldin_lr = 0.05;        ///< learning rate of those steps
  void declare(KeyTable& keys) override;
  // CDAE's logistic loss over every item starts far from its optimum (all outputs near 0.5) and
  // needs a larger step than the multinomial models; 0.01 was the best of {1e-3, 3e-3, 1e-2} on
  // the synthetic sets.
  TrainDefaults train_defaults(const Config&) const override { return {1e-2, 0.2, 50}; }
};

/// The shared network (replicated on every rank).
class CDAENetImpl : public torch::nn::Module {
 public:
  /// nn.Linear's default initialisation.
  CDAENetImpl(std::int64_t items, std::int64_t hidden);
  /// Logits [rows, items] for input values `weights` at the batch's non-zeros plus user vectors `v` [rows, hidden].
  torch::Tensor forward(const SparseBatch& batch, const torch::Tensor& weights, const torch::Tensor& v);

  torch::Tensor w;  ///< [items, hidden], item-major
  torch::Tensor b;  ///< [hidden]
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(CDAENet);

/// CDAE behind the Model interface: groups "network" (replicated) and "users" (this rank's V_u rows).
class CDAEModel final : public StepModel {
 public:
  CDAEModel(const CDAEConfig& config, double dropout, const ModelContext& ctx);
  std::string type() const override { return "cdae"; }
  torch::nn::Module& module() override { return *net_; }
  std::vector<ParameterGroup> parameter_groups() override;
  std::vector<PassSpec> epoch_schedule(int) const override { return {{"joint", {0, 1}, 0, dropout_}}; }
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  torch::Tensor regularizer(const StepContext& ctx) override;
  /// Fits a fresh V_u per held-out user on its fold-in (network frozen), then scores.
  torch::Tensor scores(const SparseBatch& fold_in) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;
  /// The network (tests).
  CDAENet& net() { return net_; }
  /// [local users, hidden]: V_u of this rank's training users (row 0 = global row users_lo).
  torch::Tensor& user_vectors() { return users_; }

 private:
  CDAENet net_{nullptr};
  torch::Tensor users_;
  std::int64_t users_lo_;
  double l2_, dropout_, foldin_lr_;
  int foldin_steps_;
};

/// CDAE from config.section<CDAEConfig>() and train.dropout.
std::unique_ptr<CDAEModel> make_cdae(const Config& config, const ModelContext& ctx);

}  // namespace recvae
