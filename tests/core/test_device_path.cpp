// The device data path (device_batch.h, score_rows_tensor) must compute exactly what the host path
// computes. These tests run it on the CPU here, and on a GPU where there is one.
#include <gtest/gtest.h>

#include <random>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/dist/comm.h"
#include "recvae/batch/counter_rng.h"
#include "recvae/batch/device_batch.h"
#include "recvae/eval/evaluator.h"
#include "recvae/train/trainer.h"

namespace recvae {
namespace {

CsrMatrix random_rows(std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::int64_t> r;
  std::vector<std::int32_t> c;
  std::vector<float> v;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      if (rng() % 10 == 0 && i % 7 != 3) {  // every 7th row stays empty
        r.push_back(i);
        c.push_back(static_cast<std::int32_t>(j));
        v.push_back(1.f + static_cast<float>(rng() % 3));
      }
  return CsrMatrix::from_triplets(rows, cols, r, c, v);
}

TEST(DevicePath, CounterRngTensorOpsAreBitIdentical) {
  std::vector<std::int64_t> keys, counters;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    keys.push_back(static_cast<std::int64_t>(stream_key({i, 7, i * 31})));
    counters.push_back(static_cast<std::int64_t>(i * 977 + (i % 3 == 0 ? 0x7fffffffffffULL : 0)));
  }
  auto k = torch::tensor(keys), c = torch::tensor(counters);
  auto mixed = mix64_tensor(k), u = uniform01_tensor(k, c), z = standard_normal_tensor(k, c);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(static_cast<std::uint64_t>(mixed[i].item<std::int64_t>()), mix64(static_cast<std::uint64_t>(keys[i])));
    ASSERT_EQ(u[i].item<double>(),
              uniform01(static_cast<std::uint64_t>(keys[i]), static_cast<std::uint64_t>(counters[i])));
    ASSERT_NEAR(z[i].item<float>(),
                standard_normal(static_cast<std::uint64_t>(keys[i]), static_cast<std::uint64_t>(counters[i])), 1e-6);
  }
}

void expect_same_batch(const SparseBatch& a, const SparseBatch& b) {
  ASSERT_EQ(a.rows, b.rows);
  EXPECT_TRUE(torch::equal(a.cols.cpu(), b.cols.cpu()));
  EXPECT_TRUE(torch::equal(a.offsets.cpu(), b.offsets.cpu()));
  EXPECT_TRUE(torch::equal(a.nnz_row.cpu(), b.nnz_row.cpu()));
  EXPECT_TRUE(torch::equal(a.values.cpu(), b.values.cpu()));
  EXPECT_TRUE(torch::allclose(a.clean_input.cpu(), b.clean_input.cpu(), 1e-7, 0));
  EXPECT_TRUE(torch::allclose(a.input.cpu(), b.input.cpu(), 1e-7, 0));
  EXPECT_TRUE(torch::equal((a.input == 0).cpu(), (b.input == 0).cpu()));  // the same dropout mask
  EXPECT_TRUE(torch::equal(a.row_sum.cpu(), b.row_sum.cpu()));
  ASSERT_EQ(a.noise.defined(), b.noise.defined());
  if (a.noise.defined()) EXPECT_TRUE(torch::allclose(a.noise.cpu(), b.noise.cpu(), 1e-6, 1e-6));
}

void check_batches_on(const torch::Device& device) {
  CsrMatrix m = random_rows(60, 80, 1);
  CsrMatrix shard = m.slice_rows(10, 60);  // a shard starting at global row 10
  DeviceShard d = DeviceShard::upload(shard, 10, device);
  const std::vector<std::int64_t> rows = {41, 10, 13, 59, 24, 17};  // 17 and 24 are empty rows
  BatchNoise noise{5, 2, 1, 0.5, 12};
  expect_same_batch(assemble_batch(shard, 10, rows, &noise, torch::kCPU), assemble_batch_on_device(d, rows, &noise));
  expect_same_batch(assemble_batch(shard, 10, rows, nullptr, torch::kCPU), assemble_batch_on_device(d, rows, nullptr));
  BatchNoise no_drop{5, 2, 3, 0.0, 12};
  expect_same_batch(assemble_batch(shard, 10, rows, &no_drop, torch::kCPU),
                    assemble_batch_on_device(d, rows, &no_drop));
}

TEST(DevicePath, BatchAssemblyEqualsHostPath) { check_batches_on(torch::kCPU); }

void check_metrics_on(const torch::Device& device) {
  const std::int64_t users = 200, items = 400;
  CsrMatrix fold_in = random_rows(users, items, 2), holdout = random_rows(users, items, 3);
  // Holdout disjoint from fold-in, as the protocol makes it.
  std::vector<std::int64_t> r;
  std::vector<std::int32_t> c;
  std::vector<float> v;
  for (std::int64_t u = 0; u < users; ++u)
    for (std::int64_t k = holdout.indptr[u]; k < holdout.indptr[u + 1]; ++k)
      if (!std::binary_search(fold_in.indices.begin() + fold_in.indptr[u],
                              fold_in.indices.begin() + fold_in.indptr[u + 1], holdout.indices[k])) {
        r.push_back(u);
        c.push_back(holdout.indices[k]);
        v.push_back(1.f);
      }
  holdout = CsrMatrix::from_triplets(users, items, r, c, v);
  // Distinct scores per row (a permutation): without ties the two top-k rankings must agree.
  torch::manual_seed(9);
  auto scores = torch::rand({users, items}).argsort(/*dim=*/1, /*descending=*/false).to(torch::kFloat32).contiguous();
  MetricSums host = score_rows(scores.data_ptr<float>(), items, users, items, fold_in, holdout, 0);
  std::vector<std::int64_t> ids(users);
  std::iota(ids.begin(), ids.end(), 0);
  DeviceShard fi = DeviceShard::upload(fold_in, 0, device), ho = DeviceShard::upload(holdout, 0, device);
  MetricSums dev = score_rows_tensor(scores.to(device), assemble_batch_on_device(fi, ids, nullptr),
                                     assemble_batch_on_device(ho, ids, nullptr));
  EXPECT_EQ(dev.users, host.users);
  EXPECT_NEAR(dev.ndcg100, host.ndcg100, 1e-9 * users);
  EXPECT_NEAR(dev.recall20, host.recall20, 1e-9 * users);
  EXPECT_NEAR(dev.recall50, host.recall50, 1e-9 * users);
}

TEST(DevicePath, TensorMetricsEqualHostMetrics) { check_metrics_on(torch::kCPU); }

TEST(DevicePath, TrainingWithDeviceDataEqualsHostData) {
  auto comm = make_mpi_communicator();
  const std::string dir = testing::scratch_dir("device_data");
  const std::string data = testing::make_synthetic_split(dir, 600, 150, 80, 3);
  Config c = testing::small_config(data, dir);
  c.eval.popularity_baseline = false;
  c.dist.device_data = "off";
  RunResult host = Trainer(c, *comm).run();
  c.dist.device_data = "on";
  c.output.dir += "_on";
  RunResult dev = Trainer(c, *comm).run();
  EXPECT_EQ(dev.best_epoch, host.best_epoch);
  EXPECT_NEAR(dev.test.mean_ndcg100(), host.test.mean_ndcg100(), 1e-5);
  EXPECT_NEAR(dev.test.mean_recall50(), host.test.mean_recall50(), 1e-5);
}

// On a GPU: the same batches, metrics and loss as on the CPU.
TEST(DevicePath, GpuMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device gpu(torch::kCUDA, 0);
  check_batches_on(gpu);
  check_metrics_on(gpu);
  CsrMatrix m = random_rows(40, 300, 4);
  torch::manual_seed(3);
  const std::array<double, 3> weights{0.15, 0.75, 0.1};
  RecVAE cpu_model(RecVAEShape{300, 32, 8, 0.1}, weights, 10.0);
  RecVAE gpu_model(RecVAEShape{300, 32, 8, 0.1}, weights, 10.0);
  {
    torch::NoGradGuard g;
    auto a = cpu_model->parameters(), b = gpu_model->parameters();
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  gpu_model->to(gpu);
  std::vector<std::int64_t> rows(40);
  std::iota(rows.begin(), rows.end(), 0);
  BatchNoise noise{1, 0, 0, 0.5, 8};
  auto lc = cpu_model->loss(assemble_batch(m, 0, rows, &noise, torch::kCPU), 40, {0.005, 0});
  auto lg = gpu_model->loss(assemble_batch_on_device(DeviceShard::upload(m, 0, gpu), rows, &noise), 40, {0.005, 0});
  EXPECT_NEAR(lg.loss.item<double>(), lc.loss.item<double>(), 1e-4 * std::abs(lc.loss.item<double>()));
}

}  // namespace
}  // namespace recvae
