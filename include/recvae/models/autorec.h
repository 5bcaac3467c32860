#pragma once
// User-based AutoRec (Sedhain et al., WWW 2015) for implicit feedback: h = sigmoid(x V + mu),
// out = h W + b, squared error over every item of the row, L2 penalty lambda/2 (|W|^2 + |V|^2).
#include <torch/torch.h>

#include "recvae/models/step_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `autorec:` user-based AutoRec (Sedhain et al. 2015) for implicit feedback.
struct AutoRecConfig : Section<AutoRecConfig> {
  static constexpr const char* kName = "autorec";
  static constexpr const char* kSummary = "AutoRec (Sedhain et al. 2015), user-based: autoencoder with squared error";
  std::int64_t hidden_dim = 500;  ///< hidden width
  double l2 = 1.0;                ///< lambda: the objective's lambda/2 (|W|^2 + |V|^2), spread over the users' batches
  void declare(KeyTable& keys) override;
  TrainDefaults train_defaults(const Config&) const override { return {1e-3, 0.0, 50}; }
};

/// The network: item-major first layer (sparse input), identity output.
class AutoRecNetImpl : public torch::nn::Module {
 public:
  /// nn.Linear's default initialisation.
  AutoRecNetImpl(std::int64_t items, std::int64_t hidden);
  /// Reconstruction [rows, items] for input values `weights` at the batch's non-zeros.
  torch::Tensor forward(const SparseBatch& batch, const torch::Tensor& weights);

  torch::Tensor v;   ///< [items, hidden], item-major
  torch::Tensor mu;  ///< [hidden]
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(AutoRecNet);

/// AutoRec behind the Model interface: one joint pass per epoch.
class AutoRecModel final : public SingleNetworkModel<> {
 public:
  AutoRecModel(const AutoRecConfig& config, double dropout, const ModelContext& ctx);
  std::string type() const override { return "autorec"; }
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  torch::Tensor regularizer(const StepContext& ctx) override;
  torch::Tensor scores(const SparseBatch& fold_in) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;
  /// The network (tests).
  AutoRecNet& net() { return net_; }

 private:
  AutoRecNet net_{nullptr};
  double l2_;
  std::int64_t train_users_;
};

/// AutoRec from config.section<AutoRecConfig>() and train.dropout.
std::unique_ptr<AutoRecModel> make_autorec(const Config& config, const ModelContext& ctx);

}  // namespace recvae
