#pragma once
// Mult-VAE (Liang et al., WWW 2018; dawenl/vae_cf, VAE_ML20M_WWW2018.ipynb): I -> 600 -> 2x200
// encoder, 200 -> 600 -> I decoder, tanh between layers, multinomial likelihood, KL to N(0, I)
// annealed by global optimiser steps.
#include <torch/torch.h>

#include "recvae/models/step_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `multvae:` Mult-VAE (Liang et al. 2018), the notebook's defaults.
struct MultVAEConfig : Section<MultVAEConfig> {
  static constexpr const char* kName = "multvae";
  static constexpr const char* kSummary =
      "Mult-VAE (Liang et al. 2018): VAE with a multinomial likelihood and KL annealing";
  std::int64_t hidden_dim = 600;  ///< encoder and decoder hidden width
  std::int64_t latent_dim = 200;  ///< latent width
  double beta_cap = 0.2;          ///< KL weight ceiling (anneal_cap)
  std::int64_t anneal_steps =
      200000;       ///< global optimiser steps to reach beta 1 (total_anneal_steps); 0: beta_cap throughout
  double l2 = 0.0;  ///< weight penalty l2 * sum |W|^2 per step (the notebook's lam, 0 for the VAE)
  void declare(KeyTable& keys) override;
};

/// The network: item-major first layer (sparse input), then dense layers.
class MultVAENetImpl : public torch::nn::Module {
 public:
  /// Xavier-uniform weights, truncated-normal(0.001) biases, as the notebook.
  MultVAENetImpl(std::int64_t items, std::int64_t hidden, std::int64_t latent);
  /// (mu, logvar) of q(z|x) for the batch rows with input values `weights` at the non-zeros.
  std::pair<torch::Tensor, torch::Tensor> encode(const SparseBatch& batch, const torch::Tensor& weights);
  /// Decoder logits [rows, items].
  torch::Tensor decode(const torch::Tensor& z);
  /// Weight matrices (the notebook's L2 penalty applies to them, not to biases).
  std::vector<torch::Tensor> weights() const;

  torch::Tensor q1_w;  ///< [items, hidden], item-major
  torch::Tensor q1_b;  ///< [hidden]
  torch::nn::Linear q2{nullptr}, p1{nullptr}, p2{nullptr};
  std::int64_t latent;  ///< D
};
TORCH_MODULE(MultVAENet);

/// Mult-VAE behind the Model interface: one joint pass per epoch.
class MultVAEModel final : public SingleNetworkModel<ActorModel> {
 public:
  MultVAEModel(const MultVAEConfig& config, double dropout, const ModelContext& ctx);
  std::string type() const override { return "multvae"; }
  std::int64_t noise_dim() const override { return net_->latent; }
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  torch::Tensor regularizer(const StepContext& ctx) override;
  torch::Tensor scores(const SparseBatch& fold_in) override;
  torch::Tensor training_logits(const SparseBatch& batch) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;
  /// KL weight at global step `step`: min(beta_cap, step / anneal_steps) (beta_cap when anneal_steps is 0).
  double beta_at(std::int64_t step) const;
  /// The network (tests).
  MultVAENet& net() { return net_; }

 private:
  MultVAENet net_{nullptr};
  double beta_cap_, l2_;
  std::int64_t anneal_steps_, hidden_;
};

/// Mult-VAE from config.section<MultVAEConfig>() and train.dropout.
std::unique_ptr<MultVAEModel> make_multvae(const Config& config, const ModelContext& ctx);

}  // namespace recvae
