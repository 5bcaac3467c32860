#pragma once
// User-based AutoRec (Sedhain et al., WWW 2015) for implicit feedback: h = sigmoid(x V + mu),
// out = h W + b, squared error over every item of the row, L2 penalty lambda/2 (|W|^2 + |V|^2).
#include <torch/torch.h>

#include "recvae/models/model.h"

namespace recvae {

struct AutoRecConfig;

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
class AutoRecModel final : public SingleNetworkModel {
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

}  // namespace recvae
