#pragma once
// Distributed evaluation: every rank scores its own held-out users; only metric sums travel.
#include <cstdint>
#include <memory>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/data/csr.h"
#include "recvae/batch/device_batch.h"
#include "recvae/eval/metrics.h"
#include "recvae/models/model.h"

namespace recvae {

/// One rank's rows of a held-out split (fold-in input and holdout targets, rows aligned).
struct HeldOutShard {
  CsrMatrix fold_in;                                            ///< encoder input; also excluded from the ranking
  CsrMatrix holdout;                                            ///< targets
  std::shared_ptr<DeviceShard> fold_in_device, holdout_device;  ///< copies on a GPU (device evaluation)

  /// Copies both matrices to `device` so that evaluation runs there end to end.
  void upload(const torch::Device& device);
};

/// Metric sums of a batch from its score rows, computed with tensor ops on the scores' device:
/// fold-in items masked, top-k on the device, only four numbers leave it. Ties in the top-k are
/// broken as torch::topk breaks them (the host path of score_rows prefers the lower item id).
MetricSums score_rows_tensor(torch::Tensor scores, const SparseBatch& fold_in, const SparseBatch& holdout);

/// Local metric sums of the model on a shard, scoring `batch_size` users at a time.
MetricSums evaluate_model_local(Model& model, const HeldOutShard& shard, std::int64_t batch_size,
                                const torch::Device& device, int threads);
/// Local metric sums of one shared score row (e.g. item popularity) on a shard.
MetricSums evaluate_scores_local(const std::vector<float>& item_scores, const HeldOutShard& shard, int threads);
/// Sums of all ranks (every rank receives them).
MetricSums reduce_metrics(const MetricSums& local, Communicator& comm);

}  // namespace recvae
