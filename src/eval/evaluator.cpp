#include "recvae/eval/evaluator.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace recvae {

void HeldOutShard::upload(const torch::Device& device) {
  fold_in_device = std::make_shared<DeviceShard>(DeviceShard::upload(fold_in, 0, device));
  holdout_device = std::make_shared<DeviceShard>(DeviceShard::upload(holdout, 0, device));
}

MetricSums score_rows_tensor(torch::Tensor scores, const SparseBatch& fold_in, const SparseBatch& holdout) {
  torch::NoGradGuard guard;
  const std::int64_t rows = scores.size(0), items = scores.size(1), k = std::min<std::int64_t>(100, items);
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat64).device(scores.device());
  scores = scores.clone();
  scores.index_put_({fold_in.nnz_row, fold_in.cols}, -std::numeric_limits<float>::infinity());
  auto top = std::get<1>(scores.topk(k, 1, /*largest=*/true, /*sorted=*/true));
  auto relevant = torch::zeros({rows, items}, scores.options().dtype(torch::kBool));
  relevant.index_put_({holdout.nnz_row, holdout.cols}, true);
  auto hits = relevant.gather(1, top).to(torch::kFloat64);  // [rows, k]
  auto discount = 1.0 / torch::log2(torch::arange(2, k + 2, fopts));
  auto n = torch::zeros({rows}, fopts).index_add_(0, holdout.nnz_row, torch::ones({holdout.cols.size(0)}, fopts));
  auto counted = n > 0;
  auto ideal = torch::cumsum(discount, 0).index_select(0, (n.clamp(1, 100) - 1).to(torch::kInt64));
  auto ndcg = (hits.narrow(1, 0, std::min<std::int64_t>(100, k)) * discount).sum(1) / ideal;
  auto recall = [&](std::int64_t at) {
    return hits.narrow(1, 0, std::min(at, k)).sum(1) / n.clamp_max(static_cast<double>(at)).clamp_min(1.0);
  };
  auto zero = torch::zeros_like(ndcg);
  auto sums = torch::stack({torch::where(counted, ndcg, zero).sum(), torch::where(counted, recall(20), zero).sum(),
                            torch::where(counted, recall(50), zero).sum(), counted.to(torch::kFloat64).sum()})
                  .to(torch::kCPU);
  return MetricSums::from_array(sums.data_ptr<double>());
}

MetricSums evaluate_model_local(Model& model, const HeldOutShard& shard, std::int64_t batch_size,
                                const torch::Device& device, int threads) {
  MetricSums sums;
  const std::int64_t rows = shard.fold_in.rows, items = shard.fold_in.cols;
  model.module().eval();
  for (std::int64_t lo = 0; lo < rows; lo += batch_size) {
    const std::int64_t hi = std::min(rows, lo + batch_size);
    if (shard.fold_in_device) {  // on the device end to end: only the sums come back
      std::vector<std::int64_t> ids(static_cast<size_t>(hi - lo));
      std::iota(ids.begin(), ids.end(), lo);
      auto in = assemble_batch_on_device(*shard.fold_in_device, ids, nullptr);
      auto out = assemble_batch_on_device(*shard.holdout_device, ids, nullptr);
      sums += score_rows_tensor(model.scores(in), in, out);
      continue;
    }
    auto batch = assemble_eval_batch(shard.fold_in, lo, hi, device);
    auto scores = model.scores(batch).to(torch::kCPU).contiguous();
    sums += score_rows(scores.data_ptr<float>(), items, hi - lo, items, shard.fold_in, shard.holdout, lo, threads);
  }
  model.module().train();
  return sums;
}

MetricSums evaluate_scores_local(const std::vector<float>& item_scores, const HeldOutShard& shard, int threads) {
  return score_rows(item_scores.data(), 0, shard.fold_in.rows, shard.fold_in.cols, shard.fold_in, shard.holdout, 0,
                    threads);
}

MetricSums reduce_metrics(const MetricSums& local, Communicator& comm) {
  double buf[4];
  local.to_array(buf);
  comm.allreduce_sum_host(buf, 4);
  return MetricSums::from_array(buf);
}

}  // namespace recvae
