#include "recvae/train/best_epoch.h"

namespace recvae {

bool BestEpoch::offer(int epoch, const MetricSums& validation) {
  if (epoch_ >= 0 && !(validation.mean_ndcg100() > validation_.mean_ndcg100())) return false;
  epoch_ = epoch;
  validation_ = validation;
  return true;
}

void BestEpoch::keep(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard guard;
  weights_.clear();
  for (const auto& p : params) weights_.push_back(p.detach().clone());
}

void BestEpoch::restore_into(const std::vector<torch::Tensor>& params) const {
  if (weights_.empty()) return;
  torch::NoGradGuard guard;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(weights_[i]);
}

void BestEpoch::restore(int epoch, const MetricSums& validation, std::vector<torch::Tensor> weights) {
  epoch_ = epoch;
  validation_ = validation;
  weights_ = std::move(weights);
}

}  // namespace recvae
