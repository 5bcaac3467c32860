// Multi-rank tests, run by CTest under mpirun -np 1, 2 and 3 (uneven shards). Every rank runs
// every test; each compares a trainer over MPI_COMM_WORLD with a single-process trainer over
// MPI_COMM_SELF on the same data (Note [World-size invariance]).
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <sstream>
#include <filesystem>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/dist/comm.h"
#include "recvae/dist/grad_sync.h"
#include "recvae/dist/row_gather.h"
#include "recvae/util/error.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/data/sharding.h"
#include "recvae/models/cdae.h"
#include "recvae/models/ease.h"
#include "recvae/data/h5_io.h"
#include "recvae/linalg/block_cyclic.h"
#include "recvae/linalg/distributed_spd_inverse.h"
#include "recvae/linalg/gram.h"
#include "recvae/util/error.h"
#include "recvae/models/implicit_slim.h"
#include "recvae/models/slim.h"
#include "recvae/models/wmf.h"
#include "recvae/models/multvae.h"
#include "recvae/models/ract.h"
#include "recvae/serve/recommender.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/trainer.h"
#include "recvae/models/multdae.h"
#include "recvae/models/autorec.h"

namespace recvae {
namespace {

using testing::decoder_pass;
using testing::encoder_pass;
using testing::joint_pass;
using testing::recvae_net;

int world_rank() {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// A directory made by rank 0 and shared with the others.
std::string shared_dir(const std::string& name) {
  std::string dir = world_rank() == 0 ? testing::scratch_dir(name) : std::string();
  int len = static_cast<int>(dir.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  dir.resize(static_cast<size_t>(len));
  MPI_Bcast(dir.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  return dir;
}

const std::string& data_file() {
  static const std::string path = [] {
    std::string dir = shared_dir("mpi_data");
    std::string p = dir + "/synthetic.h5";
    if (world_rank() == 0) testing::make_synthetic_split(dir, 700, 200, 90, 11);
    MPI_Barrier(MPI_COMM_WORLD);
    return p;
  }();
  return path;
}

// Largest relative difference ||a - b|| / ||b|| over the tensors.
double max_relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = (a[i] - b[i]).norm().item<double>(), ref = b[i].norm().item<double>();
    worst = std::max(worst, diff / std::max(ref, 1e-12));
  }
  return worst;
}

Config config_for(const std::string& name, std::int64_t batch) {
  Config c = testing::small_config(data_file(), shared_dir(name));
  c.train.batch_size = batch;
  c.train.max_steps_per_pass = 4;
  c.train.threads = 1;
  return c;
}

// A copy of a world run's checkpoints for each rank's own one-rank resume; returns its run directory.
std::string copy_checkpoints_for_this_rank(const std::string& run_dir) {
  const std::string copy = run_dir + "/copy_" + std::to_string(world_rank());
  std::filesystem::create_directories(copy);
  std::filesystem::copy(run_dir + "/checkpoints", copy + "/checkpoints", std::filesystem::copy_options::recursive);
  MPI_Barrier(MPI_COMM_WORLD);
  return copy;
}

// k steps of the alternating schedule, on both trainers.
void train_some(Trainer& t) {
  t.train_pass(0, encoder_pass(0, 0.5));
  t.train_pass(0, encoder_pass(1, 0.5));
  t.end_pass(encoder_pass(2));
  t.train_pass(0, decoder_pass(2));
  t.train_pass(1, joint_pass(0, 0.5));
}

TEST(Distributed, ParametersEqualSingleProcessAfterSteps) {
  Config c = config_for("steps", 37);  // 37 does not divide the users: uneven batches and shards
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  Trainer dist(c, *world), single(c, *self);
  EXPECT_EQ(max_relative_difference(dist.model().parameters(), single.model().parameters()), 0.0);
  train_some(dist);
  train_some(single);
  const double rel = max_relative_difference(dist.model().parameters(), single.model().parameters());
  EXPECT_LE(rel, 1e-5) << "world size " << world_size();
  EXPECT_GT(max_relative_difference(dist.model().parameters(), Trainer(c, *self).model().parameters()),
            1e-3);  // it did train
}

TEST(Distributed, RanksOwningNoUsersOfABatchStayInStep) {
  // Batches of 2 users: with 3 ranks at least one rank owns none of every batch.
  Config c = config_for("empty_share", 2);
  c.train.max_steps_per_pass = 6;
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  Trainer dist(c, *world), single(c, *self);
  train_some(dist);
  train_some(single);
  EXPECT_LE(max_relative_difference(dist.model().parameters(), single.model().parameters()), 1e-5);
  EXPECT_NO_THROW(dist.check_replicas_in_sync());
}

TEST(Distributed, EvaluationEqualsSingleProcess) {
  Config c = config_for("eval", 50);
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  Trainer dist(c, *world), single(c, *self);
  train_some(dist);
  train_some(single);
  for (bool test_split : {false, true}) {
    MetricSums d = dist.evaluate(test_split), s = single.evaluate(test_split);
    EXPECT_EQ(d.users, s.users);
    EXPECT_GT(d.users, 50);
    EXPECT_NEAR(d.ndcg100, s.ndcg100, 1e-6 * s.ndcg100);
    EXPECT_NEAR(d.recall20, s.recall20, 1e-6 * s.recall20);
    EXPECT_NEAR(d.recall50, s.recall50, 1e-6 * s.recall50);
    MetricSums dp = dist.evaluate_popularity(test_split), sp = single.evaluate_popularity(test_split);
    EXPECT_EQ(dp.users, sp.users);
    EXPECT_NEAR(dp.ndcg100, sp.ndcg100, 1e-9 * sp.ndcg100);
  }
}

TEST(Distributed, ShardsAreUnevenButCoverEveryRowOnce) {
  SplitFile file(data_file());
  for (const char* split : {split::kTrain, split::kValidationFoldIn, split::kTestFoldIn}) {
    RowRange r = shard_of(file, split, world_rank(), world_size());
    std::int64_t rows[2] = {r.size(), r.lo};
    std::int64_t total = rows[0];
    MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    EXPECT_EQ(total, file.num_rows(split));
    CsrMatrix part = file.read_rows(split, r.lo, r.hi);
    EXPECT_EQ(part.rows, r.size());
  }
}

TEST(Distributed, SnapshotCheckCatchesAPerturbedRank) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  Config c = config_for("perturb", 50);
  auto world = make_mpi_communicator();
  Trainer dist(c, *world);
  EXPECT_NO_THROW(dist.check_replicas_in_sync());
  if (world_rank() == 1) {
    torch::NoGradGuard g;
    recvae_net(dist)->encoder_old->parameters()[3].add_(1e-3);
  }
  // Every rank reaches the same verdict, so all of them throw (none waits for the others).
  EXPECT_THROW(dist.check_replicas_in_sync(), std::runtime_error);
}

TEST(Distributed, WholeRunMatchesSingleProcessMetrics) {
  Config c = config_for("run", 64);
  c.train.max_steps_per_pass = 0;
  c.train.epochs = 2;
  c.eval.popularity_baseline = false;
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  RunResult d = Trainer(c, *world).run();
  c.output.dir += "/single_" + std::to_string(world_rank());
  c.output.progress_seconds = 0;
  RunResult s = Trainer(c, *self).run();
  EXPECT_EQ(d.best_epoch, s.best_epoch);
  EXPECT_NEAR(d.test.mean_ndcg100(), s.test.mean_ndcg100(), 1e-4);
  EXPECT_NEAR(d.best_validation.mean_ndcg100(), s.best_validation.mean_ndcg100(), 1e-4);
}

// Resume across world sizes: N ranks train one epoch, then N ranks (and, from a copy of the
// checkpoint, one rank) finish the run; both equal an uninterrupted single-process run. The N-rank
// run shards its optimizer and the one-rank resume replicates it: the checkpoint's whole moments
// are cut into whatever the resuming run holds (Note [Sharded optimizer]).
TEST(Distributed, ResumeAtTheSameAndAtAnotherWorldSize) {
  Config c = config_for("resume", 64);
  c.train.max_steps_per_pass = 0;
  c.train.epochs = 2;
  c.eval.popularity_baseline = false;
  c.dist.optimizer = "sharded";
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();

  Config single = c;
  single.output.dir += "/uninterrupted_" + std::to_string(world_rank());
  RunResult reference = Trainer(single, *self).run();

  Config first = c;
  first.train.epochs = 1;
  Trainer(first, *world).run();
  const std::string copy = copy_checkpoints_for_this_rank(c.output.dir);

  RunResult same_size = Trainer(c, *world).run(/*resume=*/true);
  EXPECT_EQ(same_size.best_epoch, reference.best_epoch);
  EXPECT_NEAR(same_size.test.mean_ndcg100(), reference.test.mean_ndcg100(), 1e-4);

  Config to_one = c;
  to_one.output.dir = copy;
  to_one.dist.optimizer = "replicated";
  RunResult one = Trainer(to_one, *self).run(true);
  EXPECT_EQ(one.best_epoch, reference.best_epoch);
  EXPECT_NEAR(one.test.mean_ndcg100(), reference.test.mean_ndcg100(), 1e-4);
}

// Checkpoints hold the whole group's moments in buffer order (Note [Gradient buckets]), so a run
// resumes with other buckets, as well as at another world size.
TEST(Distributed, ResumeWithOtherGradientBuckets) {
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  for (const double first_buckets : {0.0, 0.001}) {
    const std::string tag = first_buckets > 0 ? "from_buckets" : "to_buckets";
    Config c = config_for("resume_" + tag, 64);
    c.train.max_steps_per_pass = 0;
    c.train.epochs = 2;
    c.eval.popularity_baseline = false;
    c.dist.optimizer = "sharded";

    Config single = c;
    single.output.dir += "/uninterrupted_" + std::to_string(world_rank());
    RunResult reference = Trainer(single, *self).run();

    Config first = c;
    first.train.epochs = 1;
    first.dist.bucket_mb = first_buckets;
    Trainer(first, *world).run();
    const std::string copy = copy_checkpoints_for_this_rank(c.output.dir);

    Config again = c;
    again.dist.bucket_mb = first_buckets > 0 ? 0.0 : 0.001;
    RunResult same_size = Trainer(again, *world).run(/*resume=*/true);
    EXPECT_EQ(same_size.best_epoch, reference.best_epoch) << tag;
    EXPECT_NEAR(same_size.test.mean_ndcg100(), reference.test.mean_ndcg100(), 1e-4) << tag;

    Config to_one = again;
    to_one.output.dir = copy;
    RunResult one = Trainer(to_one, *self).run(true);
    EXPECT_EQ(one.best_epoch, reference.best_epoch) << tag;
    EXPECT_NEAR(one.test.mean_ndcg100(), reference.test.mean_ndcg100(), 1e-4) << tag;
  }
}

TEST(Distributed, RanksWithDifferentConfigsRefuseToStart) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  Config c = config_for("mismatch", 64);
  if (world_rank() == 1) c.train.lr = 1e-3;
  auto world = make_mpi_communicator();
  try {
    Trainer t(c, *world);
    FAIL() << "started with different configs";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("different configs or data files"), std::string::npos);
  }
}

// ------------------------------------------------------------------------------------------
// The rest of the family (models/model.h): the same world-size invariance for every model type.

Config model_config(const std::string& type, const std::string& name, std::int64_t batch) {
  Config c = config_for(name + "_" + type, batch);
  c.model.type = type;
  c.section<MultVAEConfig>().hidden_dim = 32;
  c.section<MultVAEConfig>().latent_dim = 8;
  c.section<MultVAEConfig>().anneal_steps = 20;  // beta rises during the steps below (0, 0.05, 0.1, ...)
  c.section<MultDAEConfig>().latent_dim = 16;
  c.section<CDAEConfig>().hidden_dim = 16;
  c.section<AutoRecConfig>().hidden_dim = 24;
  c.section<RaCTConfig>().critic_epochs = 1;  // epoch 1: the measuring pass and the critic; epoch 2: actor-critic
  c.section<RaCTConfig>().ac_epochs = 1;
  c.section<RaCTConfig>().actor_lr = 1e-3;  // large enough for the actor to move measurably in four steps
  return c;
}

// Two epochs of the model's own schedule (4 steps per pass).
void train_schedule(Trainer& t) {
  for (int epoch = 0; epoch < 2; ++epoch)
    for (const auto& spec : t.schedule(epoch)) {
      t.train_pass(epoch, spec);
      t.end_pass(spec);
    }
}

// This rank's rows of CDAE's per-user table, and the single process's rows of the same users.
std::pair<torch::Tensor, torch::Tensor> cdae_rows(Trainer& dist, Trainer& single) {
  SplitFile file(data_file());
  RowRange r = shard_of(file, split::kTrain, world_rank(), world_size());
  auto& d = dynamic_cast<CDAEModel&>(dist.model()).user_vectors();
  auto& s = dynamic_cast<CDAEModel&>(single.model()).user_vectors();
  return {d.detach(), s.detach().narrow(0, r.lo, r.size())};
}

class DistributedModels : public ::testing::TestWithParam<std::string> {};

TEST_P(DistributedModels, ParametersEqualSingleProcessAfterSteps) {
  Config c = model_config(GetParam(), "family_steps", 37);
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  Trainer dist(c, *world), single(c, *self);
  EXPECT_EQ(max_relative_difference(dist.model().parameters(), single.model().parameters()), 0.0);
  train_schedule(dist);
  train_schedule(single);
  EXPECT_EQ(dist.global_step(), single.global_step());
  EXPECT_EQ(dist.global_step(), 8);
  EXPECT_LE(max_relative_difference(dist.model().parameters(), single.model().parameters()), 1e-5)
      << GetParam() << " at world size " << world_size();
  EXPECT_GT(max_relative_difference(dist.model().parameters(), Trainer(c, *self).model().parameters()), 1e-3);
  if (GetParam() == "cdae") {
    auto [d, s] = cdae_rows(dist, single);
    EXPECT_LE(max_relative_difference({d}, {s}), 1e-5);
    EXPECT_GT(s.abs().sum().item<double>(), 0.0);  // the user vectors did move
  }
  if (GetParam() == "ract") {  // the critic's feature moments: measured over all ranks, the same everywhere
    auto d = dynamic_cast<RaCTModel&>(dist.model()).critic()->buffers();
    auto s = dynamic_cast<RaCTModel&>(single.model()).critic()->buffers();
    EXPECT_LE(max_relative_difference(d, s), 1e-5);
    EXPECT_GT(d[0].abs().sum().item<double>(), 0.0);
  }
  if (GetParam() == "multvae") {
    auto& m = dynamic_cast<MultVAEModel&>(dist.model());
    EXPECT_DOUBLE_EQ(m.beta_at(2), 0.1);                   // min(0.2, 2 / 20)
    EXPECT_DOUBLE_EQ(m.beta_at(dist.global_step()), 0.2);  // min(0.2, 8 / 20)
  }
  EXPECT_NO_THROW(dist.check_replicas_in_sync());
}

INSTANTIATE_TEST_SUITE_P(Family, DistributedModels, ::testing::Values("multvae", "multdae", "cdae", "autorec", "ract"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// A whole run of `c` at the world size and the same run in one process (its own directory),
// the trainers kept for inspection.
struct SideBySide {
  std::unique_ptr<Communicator> world = make_mpi_communicator(), self = make_mpi_self_communicator();
  std::unique_ptr<Trainer> dist_trainer, single_trainer;
  RunResult dist, single;
  explicit SideBySide(Config c) {
    c.eval.popularity_baseline = false;
    dist_trainer = std::make_unique<Trainer>(c, *world);
    dist = dist_trainer->run();
    c.output.dir += "/single_" + std::to_string(world_rank());
    single_trainer = std::make_unique<Trainer>(c, *self);
    single = single_trainer->run();
  }
};

// EASE (Note [Distributed Gram]): the reduced Gram matrix equals the whole training matrix's
// product exactly, even through tiny reduction slices, and a fit at N ranks equals one process.
TEST(DistributedEASE, GramAndFitEqualSingleProcess) {
  auto world = make_mpi_communicator();
  SplitFile file(data_file());
  const RowRange r = shard_of(file, split::kTrain, world_rank(), world_size());
  torch::Tensor g = local_gram(file.read_rows(split::kTrain, r.lo, r.hi), 1);
  reduce_gram(g, *world, /*chunk_bytes=*/1000);
  const CsrMatrix all = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain));
  EXPECT_TRUE(torch::equal(g, local_gram(all, 2)));
  // float32 takes the data collective; binary counts stay exact.
  torch::Tensor g32 = local_gram(file.read_rows(split::kTrain, r.lo, r.hi), 1, torch::kFloat32);
  reduce_gram(g32, *world, /*chunk_bytes=*/1000);
  EXPECT_TRUE(torch::equal(g32.to(torch::kFloat64), g));
  // Columns for the residual check, from the sparse shards only.
  const std::vector<std::int64_t> cols{0, 7, all.cols - 1};
  EXPECT_TRUE(torch::equal(distributed_gram_columns(file.read_rows(split::kTrain, r.lo, r.hi), cols, *world),
                           g.index_select(1, torch::tensor(cols, torch::kLong))));

  Config c = model_config("ease", "ease_fit", 64);
  c.section<EASEConfig>().lambda = {10.0, 100.0};
  SideBySide both(c);
  EXPECT_EQ(both.dist.best_epoch, both.single.best_epoch);
  EXPECT_NEAR(both.dist.test.ndcg100, both.single.test.ndcg100,
              1e-9 * both.single.test.ndcg100);  // sums in another order
  EXPECT_TRUE(torch::equal(dynamic_cast<EASEModel&>(both.dist_trainer->model()).weights(),
                           dynamic_cast<EASEModel&>(both.single_trainer->model()).weights()));

  // Through the users' Gram (Note [Inverse through the users' Gram]): every rank gathers the
  // shards' rows in the file's order and solves what one process solves.
  const CsrMatrix gathered = allgather_rows(file.read_rows(split::kTrain, r.lo, r.hi), *world);
  EXPECT_EQ(gathered.indptr, all.indptr);
  EXPECT_EQ(gathered.indices, all.indices);
  EXPECT_EQ(gathered.data, all.data);
  Config d = model_config("ease", "ease_dual_fit", 64);
  d.section<EASEConfig>().lambda = {10.0, 100.0};
  d.section<EASEConfig>().solver = "dual";
  SideBySide dual(d);
  ASSERT_TRUE(dynamic_cast<EASEModel&>(dual.dist_trainer->model()).dual());
  EXPECT_EQ(dual.dist.best_epoch, dual.single.best_epoch);
  EXPECT_NEAR(dual.dist.test.ndcg100, dual.single.test.ndcg100, 1e-9 * dual.single.test.ndcg100);
  EXPECT_TRUE(torch::equal(dynamic_cast<EASEModel&>(dual.dist_trainer->model()).weights(),
                           dynamic_cast<EASEModel&>(dual.single_trainer->model()).weights()));
}

// EASE solved across ranks (Note [Distributed EASE]): the Gram reduced into the block-cyclic
// layout holds G's columns exactly, the ScaLAPACK inverse equals the whole matrix's, and a whole
// run with the split B (its evaluation merging top-k lists, its model.h5 written by every rank)
// gives the replicated solve's B, best fit and metrics.
TEST(DistributedEASE, SplitSolveEqualsReplicated) {
  if (!scalapack_available()) GTEST_SKIP() << "this build has no ScaLAPACK";
  auto world = make_mpi_communicator();
  SplitFile file(data_file());
  const RowRange r = shard_of(file, split::kTrain, world_rank(), world_size());
  const CsrMatrix mine = file.read_rows(split::kTrain, r.lo, r.hi);
  const CsrMatrix all = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain));
  const torch::Tensor g = local_gram(all, 1);
  const std::int64_t n = g.size(0);
  // Blocks of 7: uneven ranks, several Gram rounds and a short last one.
  const BlockCyclicColumns layout(n, 7, world_size(), world_rank());
  const auto cols = torch::tensor(layout.global_columns(), torch::kLong);
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    torch::Tensor a = distributed_gram_block_cyclic(mine, layout, *world, 1, dtype);
    ASSERT_EQ(a.size(0), layout.local_columns());
    EXPECT_TRUE(torch::equal(a.to(torch::kFloat64), g.index_select(0, cols))) << dtype;
    const double lambda = 20.0;
    a.index_put_({torch::arange(cols.size(0)), cols}, a.index({torch::arange(cols.size(0)), cols}) + lambda);
    ASSERT_EQ(invert_spd_distributed(a, layout, *world, 1), 0);
    const torch::Tensor p = torch::inverse(g + lambda * torch::eye(n, torch::kFloat64));
    const double tol = dtype == torch::kFloat64 ? 1e-10 : 1e-4;
    EXPECT_LT((a.to(torch::kFloat64) - p.index_select(0, cols)).abs().max().item<double>(),
              tol * p.abs().max().item<double>())
        << dtype;
  }
  // A matrix that is not positive definite is reported by every rank alike.
  torch::Tensor bad = -distributed_gram_block_cyclic(mine, layout, *world, 1, torch::kFloat64);
  EXPECT_GT(invert_spd_distributed(bad, layout, *world, 1), 0);

  for (const std::string precision : {"float64", "float32"}) {
    Config c = model_config("ease", "ease_split_" + precision, 64);
    c.eval.popularity_baseline = false;
    c.section<EASEConfig>().lambda = {10.0, 100.0};
    c.section<EASEConfig>().precision = precision;
    c.section<EASEConfig>().solver = "distributed";
    const std::string split_dir = c.output.dir;
    Trainer split(c, *world);
    const RunResult got = split.run();
    auto& split_model = dynamic_cast<EASEModel&>(split.model());
    ASSERT_TRUE(split_model.distributed());
    auto self = make_mpi_self_communicator();
    c.section<EASEConfig>().solver = "replicated";
    c.output.dir += "/single_" + std::to_string(world_rank());
    Trainer single(c, *self);
    const RunResult want = single.run();
    const torch::Tensor b = dynamic_cast<EASEModel&>(single.model()).weights();
    const double tol = precision == "float64" ? 1e-9 : 1e-4;
    // Row c of the local block is column local_items()[c] of B.
    const auto mine_cols = torch::tensor(split_model.local_items(), torch::kLong);
    EXPECT_LT((split_model.local_weights() - b.index_select(1, mine_cols).t()).abs().max().item<double>(),
              tol * b.abs().max().item<double>())
        << precision;
    EXPECT_EQ(got.best_epoch, want.best_epoch) << precision;
    EXPECT_EQ(got.test.users, want.test.users);
    // float64: the same lists; float32: B differs in its last bits, which may swap near-ties.
    const double metric_tol = precision == "float64" ? 1e-9 : 2e-3;
    EXPECT_NEAR(got.test.mean_ndcg100(), want.test.mean_ndcg100(), metric_tol) << precision;
    EXPECT_NEAR(got.test.mean_recall20(), want.test.mean_recall20(), metric_tol) << precision;
    EXPECT_NEAR(got.best_validation.mean_ndcg100(), want.best_validation.mean_ndcg100(), metric_tol) << precision;
    // model.h5 holds the whole B, written column block by column block by every rank.
    if (world_rank() == 0) {
      h5::Handle f(H5Fopen((split_dir + "/model.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
      ASSERT_GE(f.get(), 0);
      h5::Handle ds(H5Dopen2(f.get(), "weights/B", H5P_DEFAULT), H5Dclose);
      ASSERT_GE(ds.get(), 0);
      std::vector<double> whole(static_cast<size_t>(n * n));
      ASSERT_GE(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, whole.data()), 0);
      const torch::Tensor exported = torch::from_blob(whole.data(), {n, n}, torch::kFloat64);
      EXPECT_LT((exported - b.to(torch::kFloat64)).abs().max().item<double>(), tol * b.abs().max().item<double>());
    }
    if (precision == "float64") {
      // A stop request after the first lambda checkpoints; the split fit resumes on all ranks and,
      // from a copy of the checkpoints, on each rank alone (a one-rank ScaLAPACK grid).
      c.section<EASEConfig>().solver = "distributed";
      c.output.dir = split_dir + "_stopped";
      request_stop();
      EXPECT_TRUE(Trainer(c, *world).run().stopped_on_signal);
      clear_stop_request();
      MPI_Barrier(MPI_COMM_WORLD);  // rank 0 has finished writing the checkpoint
      const std::string copy = copy_checkpoints_for_this_rank(c.output.dir);
      for (Communicator* comm : {world.get(), self.get()}) {
        if (comm == self.get()) c.output.dir = copy;
        const RunResult resumed = Trainer(c, *comm).run(/*resume=*/true);
        EXPECT_EQ(resumed.best_epoch, want.best_epoch);
        EXPECT_NEAR(resumed.test.mean_ndcg100(), want.test.mean_ndcg100(), metric_tol);
        EXPECT_NEAR(resumed.best_validation.mean_ndcg100(), want.best_validation.mean_ndcg100(), metric_tol);
      }
    }
    // recvae_recommend's loader (every rank builds one) takes the whole B from there: best_model.pt holds it empty.
    Recommender rec(split_dir, "", "cpu", 1);
    const torch::Tensor loaded = dynamic_cast<EASEModel&>(rec.model()).weights();
    ASSERT_EQ(loaded.sizes(), b.sizes());
    EXPECT_LT((loaded.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>(),
              tol * b.abs().max().item<double>());
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

// The memory refusal names the distributed route; auto picks it when the replicated solve does not fit.
TEST(DistributedEASE, MemoryLimitChoosesOrNamesTheDistributedSolver) {
  ModelContext ctx;
  ctx.items = 20000;  // 3.2 GB in float64, 1.6 GB per rank split over two
  ctx.world_size = 2;
  ctx.rank = 0;
  EASEConfig c;
  c.memory_limit_gb = 2.0;
  c.solver = "replicated";
  try {
    EASEModel m(c, ctx);
    ADD_FAILURE() << "a replicated fit above the limit was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(scalapack_available() ? "ease.solver: distributed" : "ScaLAPACK"),
              std::string::npos)
        << e.what();
  }
  if (!scalapack_available()) return;
  c.solver = "auto";
  EXPECT_TRUE(EASEModel(c, ctx).distributed());
  c.memory_limit_gb = 4.0;
  EXPECT_FALSE(EASEModel(c, ctx).distributed());
  c.memory_limit_gb = 0.5;  // not even split over two
  try {
    EASEModel m(c, ctx);
    ADD_FAILURE() << "a split fit above the limit was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("more ranks"), std::string::npos) << e.what();
  }
}

// SLIM: every rank solves its own item columns; the gathered W equals one process's.
// ImplicitSLIM (Note [ImplicitSLIM]): the update from the ranks' shards equals one process's
// from all rows, and a RecVAE run that applies it every epoch equals one process.
TEST(DistributedImplicitSLIM, UpdateAndRunEqualSingleProcess) {
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  SplitFile file(data_file());
  const RowRange r = shard_of(file, split::kTrain, world_rank(), world_size());
  const CsrMatrix all = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain));
  ImplicitSLIMConfig c;
  c.every = 1;
  c.lambda = 20;
  c.threshold = 3;
  torch::manual_seed(3);
  auto e = torch::randn({all.cols, 8}) * 0.1;
  auto dist = implicit_slim(e, file.read_rows(split::kTrain, r.lo, r.hi), *world, c, 1);
  auto single = implicit_slim(e, all, *self, c, 2);
  EXPECT_LE((dist - single).abs().max().item<double>(), 1e-9 * single.abs().max().item<double>());
  EXPECT_GT(single.abs().max().item<double>(), 0.0);

  Config cfg = model_config("recvae", "islim_run", 64);
  cfg.model.implicit_slim = c;
  cfg.train.epochs = 2;
  SideBySide both(cfg);
  EXPECT_NEAR(both.dist.test.ndcg100, both.single.test.ndcg100, 1e-5 * both.single.test.ndcg100);
  EXPECT_LE(max_relative_difference(both.dist_trainer->model().parameters(), both.single_trainer->model().parameters()),
            1e-4);
}

// WMF and PMF (Note [Distributed ALS]): users solved on their shards, items on balanced item
// ranges from the item-major copy, both gathered: the factors equal one process's.
TEST(DistributedALS, FactorsEqualSingleProcess) {
  for (const char* type : {"wmf", "pmf"}) {
    Config c = model_config(type, std::string("als_") + type, 64);
    c.section<WMFConfig>().dim = 8;
    c.section<WMFConfig>().regularization = 0.01;
    c.section<PMFConfig>().dim = 8;
    c.train.epochs = 2;
    SideBySide both(c);
    auto& d = dynamic_cast<ALSModel&>(both.dist_trainer->model());
    auto& s = dynamic_cast<ALSModel&>(both.single_trainer->model());
    EXPECT_EQ(d.item_bounds().size(), static_cast<size_t>(world_size() + 1));
    EXPECT_LE(max_relative_difference({d.item_factors()}, {s.item_factors()}), 1e-5) << type;
    EXPECT_NEAR(both.dist.test.ndcg100, both.single.test.ndcg100, 1e-5 * both.single.test.ndcg100) << type;
    EXPECT_GT(both.dist.test.mean_ndcg100(), 0.0);
  }
}

TEST(DistributedSLIM, GatheredWeightsEqualSingleProcess) {
  SideBySide both(model_config("slim", "slim_fit", 64));
  EXPECT_TRUE(torch::equal(dynamic_cast<SLIMModel&>(both.dist_trainer->model()).dense_weights(),
                           dynamic_cast<SLIMModel&>(both.single_trainer->model()).dense_weights()));
  EXPECT_NEAR(both.dist.test.ndcg100, both.single.test.ndcg100, 1e-9 * both.single.test.ndcg100);
}

// Note [Resumable fits]: a SLIM fit that one rank stops part-way leaves the same progress on
// every rank, and finishing it at this world size or in one process gives one process's W.
TEST(DistributedSLIM, AFitStoppedOnOneRankResumesAtAnyWorldSize) {
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  SplitFile file(data_file());
  const RowRange r = shard_of(file, split::kTrain, world_rank(), world_size());
  const CsrMatrix mine = file.read_rows(split::kTrain, r.lo, r.hi);
  const CsrMatrix all = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain));
  SLIMConfig sc;
  ModelContext mctx;
  mctx.items = file.num_items();
  SLIMModel whole(sc, mctx), part(sc, mctx);
  whole.fit(0, FitContext{all, 0, *self, 1, {}});
  std::atomic<int> polls{0};
  part.fit(0, FitContext{mine, r.lo, *world, 1, [&] { return world_rank() == 0 && ++polls > 10; }});
  const torch::Tensor progress = part.fit_progress();
  ASSERT_TRUE(progress.defined()) << "rank " << world_rank() << " did not learn of rank 0's stop";
  const std::vector<std::int64_t> flags(progress.data_ptr<std::int64_t>(),
                                        progress.data_ptr<std::int64_t>() + progress.numel());
  const std::vector<std::int64_t> every = allgather_host(*world, flags);
  for (int k = 1; k < world_size(); ++k)
    EXPECT_TRUE(std::equal(flags.begin(), flags.end(), every.begin() + k * static_cast<std::ptrdiff_t>(flags.size())))
        << "rank " << k << " has other progress";
  const std::int64_t solved = progress.slice(0, 1).sum().item<std::int64_t>();
  EXPECT_GE(solved, 10);
  EXPECT_LT(solved, mctx.items);

  std::stringstream bytes;
  torch::serialize::OutputArchive out;
  part.module().save(out);
  out.save_to(bytes);
  const std::string saved = bytes.str();
  for (Communicator* comm : {world.get(), self.get()}) {
    const bool alone = comm == self.get();
    SLIMModel resumed(sc, mctx);
    std::istringstream in_bytes(saved);
    torch::serialize::InputArchive in;
    in.load_from(in_bytes);
    resumed.module().load(in);
    resumed.restore_fit_progress(progress);
    resumed.fit(0, alone ? FitContext{all, 0, *comm, 1, {}} : FitContext{mine, r.lo, *comm, 1, {}});
    EXPECT_FALSE(resumed.fit_progress().defined());
    EXPECT_TRUE(torch::equal(resumed.dense_weights(), whole.dense_weights())) << (alone ? "one process" : "all ranks");
  }
}

// CDAE's per-user vectors are gathered into the checkpoint and re-sharded on resume: N ranks
// train an epoch, one rank finishes the run, and both the metrics and every user's vector equal
// an uninterrupted single-process run.
TEST(DistributedModelsResume, CDAEUserVectorsSurviveAResumeAtAnotherWorldSize) {
  Config c = model_config("cdae", "cdae_resume", 64);
  c.train.max_steps_per_pass = 0;
  c.train.epochs = 2;
  c.eval.popularity_baseline = false;
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();

  Config single = c;
  single.output.dir += "/uninterrupted_" + std::to_string(world_rank());
  Trainer reference_trainer(single, *self);
  RunResult reference = reference_trainer.run();

  Config first = c;
  first.train.epochs = 1;
  Trainer(first, *world).run();
  const std::string copy = copy_checkpoints_for_this_rank(c.output.dir);

  Config to_one = c;
  to_one.output.dir = copy;
  Trainer one_trainer(to_one, *self);
  RunResult one = one_trainer.run(true);
  EXPECT_EQ(one.best_epoch, reference.best_epoch);
  EXPECT_NEAR(one.test.mean_ndcg100(), reference.test.mean_ndcg100(), 1e-4);
  auto& got = dynamic_cast<CDAEModel&>(one_trainer.model()).user_vectors();
  auto& want = dynamic_cast<CDAEModel&>(reference_trainer.model()).user_vectors();
  EXPECT_LE(max_relative_difference({got.detach()}, {want.detach()}), 1e-4);
}

TEST(Distributed, AllgatherHostBytesConcatenatesInRankOrder) {
  auto comm = make_mpi_communicator();
  // Rank r sends r bytes of value r (rank 0 sends nothing).
  std::vector<char> mine(static_cast<std::size_t>(world_rank()), static_cast<char>(world_rank()));
  const std::vector<char> all = allgather_host_bytes(*comm, mine.data(), mine.size());
  std::vector<char> expected;
  for (int r = 0; r < world_size(); ++r)
    expected.insert(expected.end(), static_cast<std::size_t>(r), static_cast<char>(r));
  EXPECT_EQ(all, expected);
}

TEST(Distributed, RecommendationsOverRanksEqualOneProcess) {
  auto comm = make_mpi_communicator();
  Config c = config_for("recommend", 64);
  c.model.type = "multdae";
  c.section<MultDAEConfig>().latent_dim = 16;
  c.train.epochs = 1;
  Trainer(c, *comm).run();
  comm->barrier();
  Recommender rec(c.output.dir, "", "cpu", 1);
  const UserHistories h = held_out_histories(SplitFile(data_file()), "test");
  const RowRange mine = balanced_range(h.rows.indptr, world_rank(), world_size());
  // One user per batch on both sides, so that every score is computed alike bit for bit.
  const TopK all = allgather_top_k(rec.recommend(h.rows, mine.lo, mine.hi, 10, 1), *comm);
  const TopK one = rec.recommend(h.rows, 0, h.rows.rows, 10, 1);
  EXPECT_EQ(all.user, one.user);
  EXPECT_EQ(all.rank, one.rank);
  EXPECT_EQ(all.item, one.item);
  EXPECT_EQ(all.score, one.score);
  EXPECT_EQ(one.size(), 10 * h.rows.rows);
}

// ------------------------------------------------------------------------------------------
// Gradient sync (Note [Sharded optimizer], Note [Step breakdown]).

TEST(GradSync, ReduceScatterAndAllgatherPlaceBlocksInRankOrder) {
  auto comm = make_mpi_communicator();
  const int n = world_size(), r = world_rank();
  const std::int64_t block = 5;
  // Rank r contributes (r + 1) * (i + 1) at element i: the sum is (i + 1) * n(n+1)/2, exact in bf16 too.
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto send = (torch::arange(n * block, torch::kFloat32) + 1).mul(r + 1).to(dtype);
    auto recv = torch::zeros({block}, dtype);
    reduce_scatter_tensor(send, recv, *comm);
    auto want = (torch::arange(r * block, (r + 1) * block, torch::kFloat32) + 1).mul(n * (n + 1) / 2);
    EXPECT_TRUE(torch::equal(recv.to(torch::kFloat32), want)) << "dtype " << dtype;

    auto gathered = torch::zeros({n * block}, dtype);
    gathered.narrow(0, r * block, block).fill_(r + 1);
    allgather_tensor(gathered, *comm);
    auto expected = torch::arange(1, n + 1, torch::kFloat32).repeat_interleave(block);
    EXPECT_TRUE(torch::equal(gathered.to(torch::kFloat32), expected)) << "dtype " << dtype;
  }
}

TEST(GradSync, Bf16SumIsTheFp32SumRoundedOnce) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  auto comm = make_mpi_communicator();
  torch::manual_seed(5);
  auto a = torch::randn({1000}).to(torch::kBFloat16), b = torch::randn({1000}).to(torch::kBFloat16);
  // Ranks 0 and 1 contribute a and b, the others zeros (adding zero is exact whatever the order).
  auto mine = world_rank() == 0 ? a.clone() : world_rank() == 1 ? b.clone() : torch::zeros_like(a);
  allreduce_tensor(mine, *comm);
  auto want = (a.to(torch::kFloat32) + b.to(torch::kFloat32)).to(torch::kBFloat16);
  EXPECT_TRUE(torch::equal(mine, want));
}

Config dist_config(const std::string& name, const std::string& optimizer, const std::string& grad_dtype) {
  Config c = config_for(name + "_" + optimizer + "_" + grad_dtype, 37);
  c.dist.optimizer = optimizer;
  c.dist.grad_dtype = grad_dtype;
  return c;
}

TEST(GradSync, ShardedAndReplicatedOptimizersTrainTheSameModel) {
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  for (const std::string type : {"recvae", "multdae"}) {  // Mult-DAE: a penalty after the reduction
    Config sc = dist_config("sharded_" + type, "sharded", "fp32"),
           rc = dist_config("repl_" + type, "replicated", "fp32");
    sc.model.type = rc.model.type = type;
    Config one = rc;
    one.output.dir += "/single_" + std::to_string(world_rank());
    Trainer sharded(sc, *world), replicated(rc, *world), single(one, *self);
    PassStats s_stats, r_stats;
    for (int epoch = 0; epoch < 2; ++epoch)
      for (const auto& spec : sharded.schedule(epoch)) {
        s_stats = sharded.train_pass(epoch, spec);
        r_stats = replicated.train_pass(epoch, spec);
        single.train_pass(epoch, spec);
        sharded.end_pass(spec);
        replicated.end_pass(spec);
        single.end_pass(spec);
      }
    EXPECT_LE(max_relative_difference(sharded.model().parameters(), replicated.model().parameters()), 1e-6) << type;
    EXPECT_LE(max_relative_difference(sharded.model().parameters(), single.model().parameters()), 1e-5) << type;
    EXPECT_NO_THROW(sharded.check_replicas_in_sync());
    // Each rank holds 1/N of the moments (up to the padding to a multiple of N).
    const double n = world_size();
    EXPECT_NEAR(static_cast<double>(s_stats.optimizer_state_bytes), r_stats.optimizer_state_bytes / n, 8.0 * n) << type;
    EXPECT_GT(r_stats.optimizer_state_bytes, 0) << type;
  }
}

// Note [Gradient buckets], Note [Overlapped gradient sync]: buckets sent during backward train
// the model that one collective per group after backward trains.
TEST(GradSync, BucketsSentDuringBackwardTrainTheSameModel) {
  auto world = make_mpi_communicator();
  const int n = world_size();
  for (const std::string optimizer : {"replicated", "sharded"})
    for (const std::string dtype : {"fp32", "bf16"}) {
      const std::string what = optimizer + " " + dtype;
      Config plain = dist_config("plain", optimizer, dtype), bucketed = dist_config("bucketed", optimizer, dtype);
      bucketed.dist.bucket_mb = 0.001;  // 262 floats: about one bucket per parameter of the small model
      Trainer a(plain, *world), b(bucketed, *world);
      CommTally ta, tb;
      for (int epoch = 0; epoch < 2; ++epoch)
        for (const auto& spec : a.schedule(epoch)) {
          const PassStats sa = a.train_pass(epoch, spec), sb = b.train_pass(epoch, spec);
          a.end_pass(spec);
          b.end_pass(spec);
          ta.collectives += sa.time.tally.collectives;
          tb.collectives += sb.time.tally.collectives;
          tb.overlapped += sb.time.tally.overlapped;
          // The same bytes, up to the rounding of (N-1)/N of each collective's size to whole bytes.
          EXPECT_NEAR(static_cast<double>(sb.time.tally.wire_bytes), static_cast<double>(sa.time.tally.wire_bytes),
                      static_cast<double>(sb.time.tally.collectives))
              << what;
        }
      const double diff = max_relative_difference(b.model().parameters(), a.model().parameters());
      if (n <= 2)
        EXPECT_EQ(diff, 0.0) << what << ": a sum over two ranks is the same in any order";
      else
        EXPECT_LE(diff, dtype == "bf16" ? 2e-2 : 1e-5) << what;
      EXPECT_NO_THROW(b.check_replicas_in_sync()) << what;
      if (n == 1) {
        EXPECT_EQ(tb.collectives, 0) << what;
        EXPECT_EQ(tb.overlapped, 0) << what;
      } else {
        EXPECT_GT(tb.collectives, ta.collectives) << what << ": more, smaller collectives";
        EXPECT_GT(tb.overlapped, 0) << what << ": some buckets left during backward";
        EXPECT_LE(tb.overlapped, tb.collectives) << what;
      }
    }
}

TEST(GradSync, BreakdownAddsUpAndCountsTheWireBytes) {
  auto world = make_mpi_communicator();
  const double n = world_size();
  for (const std::string optimizer : {"replicated", "sharded"})
    for (const std::string dtype : {"fp32", "bf16"}) {
      Config c = dist_config("breakdown", optimizer, dtype);
      c.train.max_steps_per_pass = 0;  // the whole pass: 19 steps
      Trainer t(c, *world);
      const PassStats st = t.train_pass(0, encoder_pass(0, 0.5));
      const StepBreakdown& b = st.time;
      // The parts are means over ranks of the step loop's time; a pass's seconds are a rank's own,
      // the loop and what surrounds it.
      const double parts = b.compute + b.comm + b.optimizer + b.other;
      double slowest = st.seconds, fastest = st.seconds;
      MPI_Allreduce(MPI_IN_PLACE, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      MPI_Allreduce(MPI_IN_PLACE, &fastest, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
      EXPECT_GT(b.compute, 0.0);
      EXPECT_GT(b.optimizer, 0.0);
      EXPECT_LE(parts, slowest * 1.01 + 1e-3) << optimizer << " " << dtype;
      EXPECT_GE(parts, fastest * 0.3) << optimizer << " " << dtype;
      // Ring figures per step: an all-reduce sends 2(N-1)/N of the buffer; a sharded step a
      // reduce-scatter of the gradients and an all-gather of the parameters (fp32) or of their
      // updates (bf16), (N-1)/N each: the same bytes.
      const double grad = static_cast<double>(st.allreduce_bytes), steps = static_cast<double>(st.steps);
      const double wire = dtype == "bf16" ? grad / 2 : grad;
      const double want = n == 1 ? 0 : 2 * (n - 1) / n * wire;
      EXPECT_NEAR(b.tally.wire_bytes / steps, want, 0.01 * grad + 8 * n) << optimizer << " " << dtype;
      if (n == 1) EXPECT_EQ(b.tally.collectives, 0);
    }
}

TEST(GradSync, Bf16OnTheWireStaysCloseToFp32) {
  auto world = make_mpi_communicator();
  auto self = make_mpi_self_communicator();
  Config bf = dist_config("bf16", "sharded", "bf16");
  Config one = dist_config("fp32_one", "replicated", "fp32");
  one.output.dir += "/single_" + std::to_string(world_rank());
  Trainer dist(bf, *world), single(one, *self);
  train_some(dist);
  train_some(single);
  const double rel = max_relative_difference(dist.model().parameters(), single.model().parameters());
  EXPECT_LE(rel, 2e-2);
  if (world_size() == 1)
    EXPECT_EQ(rel, 0.0);  // nothing crosses a wire
  else
    EXPECT_GT(rel, 0.0);  // the wire rounds
  EXPECT_NO_THROW(dist.check_replicas_in_sync());
}

}  // namespace
}  // namespace recvae

int main(int argc, char** argv) {
  recvae::init_process();
  ::testing::InitGoogleTest(&argc, argv);
  if (recvae::world_rank() != 0) {  // one rank reports; failures anywhere still fail the job below
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  if (rc != 0) std::fprintf(stderr, "rank %d: tests failed\n", recvae::world_rank());
  MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  recvae::finalize_process();
  return rc;
}
