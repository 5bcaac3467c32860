#pragma once
// The best epoch (or candidate fit) so far by validation NDCG@100, and a copy of its weights.
#include <torch/torch.h>

#include <vector>

#include "recvae/eval/metrics.h"

namespace recvae {

/// Tracks the best validation NDCG@100 of a run (restored from checkpoints on resume).
class BestEpoch {
 public:
  /// Records epoch `epoch` (1-based) with validation `validation`; true when it is the best so far.
  bool offer(int epoch, const MetricSums& validation);
  /// Keeps a copy of `params` as the best weights (after an offer that returned true).
  void keep(const std::vector<torch::Tensor>& params);
  /// Copies the kept weights into `params` (nothing when none were kept).
  void restore_into(const std::vector<torch::Tensor>& params) const;
  /// 1-based best epoch, -1 before any.
  int epoch() const { return epoch_; }
  /// Validation sums of the best epoch.
  const MetricSums& validation() const { return validation_; }
  /// The kept weights (empty when none).
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  /// Restores the whole state (a checkpoint).
  void restore(int epoch, const MetricSums& validation, std::vector<torch::Tensor> weights);

 private:
  int epoch_ = -1;
  MetricSums validation_;
  std::vector<torch::Tensor> weights_;
};

}  // namespace recvae
