#include "recvae/evaluator.h"

#include <algorithm>

namespace recvae {

MetricSums evaluate_model_local(RecVAE& model, const HeldOutShard& shard, std::int64_t batch_size,
                                const torch::Device& device, int threads) {
  MetricSums sums;
  const std::int64_t rows = shard.fold_in.rows, items = shard.fold_in.cols;
  model->eval();
  for (std::int64_t lo = 0; lo < rows; lo += batch_size) {
    const std::int64_t hi = std::min(rows, lo + batch_size);
    auto batch = assemble_eval_batch(shard.fold_in, lo, hi, device);
    auto scores = model->scores(batch).to(torch::kCPU).contiguous();
    sums += score_rows(scores.data_ptr<float>(), items, hi - lo, items, shard.fold_in, shard.holdout, lo, threads);
  }
  model->train();
  return sums;
}

MetricSums evaluate_scores_local(const std::vector<float>& item_scores, const HeldOutShard& shard, int threads) {
  return score_rows(item_scores.data(), 0, shard.fold_in.rows, shard.fold_in.cols, shard.fold_in, shard.holdout, 0,
                    threads);
}

MetricSums reduce_metrics(const MetricSums& local, Communicator& comm) {
  double buf[4] = {local.ndcg100, local.recall20, local.recall50, static_cast<double>(local.users)};
  comm.allreduce_sum_host(buf, 4);
  MetricSums total;
  total.ndcg100 = buf[0];
  total.recall20 = buf[1];
  total.recall50 = buf[2];
  total.users = static_cast<std::int64_t>(buf[3] + 0.5);
  return total;
}

}  // namespace recvae
