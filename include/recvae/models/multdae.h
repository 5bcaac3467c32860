#pragma once
// Mult-DAE (Liang et al., WWW 2018; dawenl/vae_cf): I -> 200 -> I with tanh, L2-normalised input
// with dropout, multinomial likelihood, L2 penalty on the weights.
#include <torch/torch.h>

#include "recvae/models/step_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `multdae:` Mult-DAE (Liang et al. 2018).
struct MultDAEConfig : Section<MultDAEConfig> {
  static constexpr const char* kName = "multdae";
  static constexpr const char* kSummary =
      "Mult-DAE (Liang et al. 2018): denoising autoencoder with a multinomial likelihood";
  std::int64_t latent_dim = 200;  ///< hidden width
  double l2 = 0.01 / 500;         ///< weight penalty l2 * sum |W|^2 per step (the notebook's lam = 0.01 / batch)
  void declare(KeyTable& keys) override;
};

/// The network: item-major first layer (sparse input), linear output.
class MultDAENetImpl : public torch::nn::Module {
 public:
  /// Xavier-uniform weights, truncated-normal(0.001) biases, as the notebook.
  MultDAENetImpl(std::int64_t items, std::int64_t latent);
  /// Logits [rows, items] for input values `weights` at the batch's non-zeros.
  torch::Tensor forward(const SparseBatch& batch, const torch::Tensor& weights);

  torch::Tensor q_w;  ///< [items, latent], item-major
  torch::Tensor q_b;  ///< [latent]
  torch::nn::Linear p{nullptr};
};
TORCH_MODULE(MultDAENet);

/// Mult-DAE behind the Model interface: one joint pass per epoch.
class MultDAEModel final : public SingleNetworkModel<> {
 public:
  MultDAEModel(const MultDAEConfig& config, double dropout, const ModelContext& ctx);
  std::string type() const override { return "multdae"; }
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  torch::Tensor regularizer(const StepContext& ctx) override;
  torch::Tensor scores(const SparseBatch& fold_in) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;
  /// The network (tests).
  MultDAENet& net() { return net_; }

 private:
  MultDAENet net_{nullptr};
  double l2_;
};

/// Mult-DAE from config.section<MultDAEConfig>() and train.dropout.
std::unique_ptr<MultDAEModel> make_multdae(const Config& config, const ModelContext& ctx);

}  // namespace recvae
