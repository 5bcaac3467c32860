// The models solved from the Gram matrix (models/gram.h): the Gram against a dense product for
// any thread count; EASE's B against a dense solve with its zero diagonal, the lambda grid
// keeping the validation-best fit, bad input; SLIM's columns against a brute-force solver and
// the KKT conditions, and a whole run; stop requests between and inside fits (Note [Resumable
// fits]) and the per-node memory limit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/models/registry.h"
#include "recvae/data/csr.h"
#include "recvae/dist/comm.h"
#include "recvae/models/ease.h"
#include "recvae/linalg/gram.h"
#include "recvae/models/slim.h"
#include "recvae/linalg/spd_inverse.h"
#include "recvae/linalg/user_gram_inverse.h"
#include "recvae/train/checkpoint.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {
namespace {

// A random binary CSR matrix and its dense copy.
std::pair<CsrMatrix, torch::Tensor> random_rows(std::int64_t rows, std::int64_t cols, double density, int seed) {
  torch::manual_seed(seed);
  auto dense = (torch::rand({rows, cols}) < density).to(torch::kFloat32);
  CsrMatrix m = CsrMatrix::empty(0, cols);
  m.rows = rows;
  m.indptr = {0};
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int32_t c = 0; c < cols; ++c)
      if (dense[r][c].item<float>() != 0) {
        m.indices.push_back(c);
        m.data.push_back(1.f);
      }
    m.indptr.push_back(m.nnz());
  }
  return {m, dense};
}

// A scratch directory with a planted synthetic split of `users` x `items`, and a config of model
// `type` on it that writes to DIR/run.
struct LinearRun {
  std::string dir;
  Config config;
};
LinearRun linear_run(const std::string& name, const std::string& type, std::int64_t users = 1200,
                     std::int64_t items = 300, std::int64_t heldout = 150, std::uint64_t seed = 7) {
  LinearRun r;
  r.dir = testing::scratch_dir(name);
  r.config = testing::small_config(testing::make_synthetic_split(r.dir, users, items, heldout, seed), r.dir + "/run");
  r.config.model.type = type;
  return r;
}

TEST(Gram, EqualsTheDenseProductForAnyThreadCount) {
  auto [m, x] = random_rows(60, 25, 0.2, 3);
  auto want = x.to(torch::kFloat64).t().matmul(x.to(torch::kFloat64));
  auto one = local_gram(m, 1);
  EXPECT_TRUE(torch::equal(one, want));
  EXPECT_TRUE(torch::equal(local_gram(m, 3), one));
  EXPECT_TRUE(torch::equal(local_gram(m, 64), one));  // more threads than items
}

TEST(Gram, Float32EqualsFloat64OnBinaryDataAndColumnsComeFromTheRows) {
  auto [m, x] = random_rows(70, 30, 0.2, 5);
  auto g = local_gram(m, 2);
  EXPECT_TRUE(torch::equal(local_gram(m, 2, torch::kFloat32).to(torch::kFloat64), g));
  auto comm = make_mpi_communicator();
  const std::vector<std::int64_t> cols{0, 3, 29};
  EXPECT_TRUE(
      torch::equal(distributed_gram_columns(m, cols, *comm), g.index_select(1, torch::tensor(cols, torch::kLong))));
}

TEST(SPDInverse, MatchesADenseInverseInBothPrecisionsAndNamesTheFailedMinor) {
  torch::manual_seed(6);
  auto r = torch::randn({40, 40}, torch::kFloat64);
  auto a = r.matmul(r.t()) + 5 * torch::eye(40, torch::kFloat64);
  auto want = torch::inverse(a);
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto p = a.to(dtype).clone();  // a copy: invert_spd overwrites its argument
    const void* storage = p.data_ptr();
    ASSERT_EQ(invert_spd(p, 2), 0);
    const double tol = dtype == torch::kFloat64 ? 1e-10 : 1e-4;
    EXPECT_LT((p.to(torch::kFloat64) - want).abs().max().item<double>(), tol * want.abs().max().item<double>());
    EXPECT_TRUE(torch::equal(p, p.t()));                                                // both triangles filled
    if (spd_inverse_extra_buffers(torch::kCPU) == 0) EXPECT_EQ(p.data_ptr(), storage);  // in place
  }
  // Indefinite: the third leading minor is the first that fails.
  auto bad = torch::eye(5, torch::kFloat64);
  bad[2][2] = -1;
  EXPECT_EQ(invert_spd(bad, 1), 3);
}

// Note [Inverse through the users' Gram]: the Woodbury route gives the direct inverse, with fewer
// users than items and with more, for weighted values, empty rows and columns, and an odd or even
// item count (the rows are taken in pairs); P is exactly symmetric at any thread count.
TEST(UserGramInverse, EqualsTheDirectInverseForEitherShape) {
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{30, 71}, {90, 40}}) {
    auto [m, x] = random_rows(rows, cols, 0.12, 5);
    for (std::int64_t q = 0; q < m.nnz(); ++q) m.data[q] = 1.0f + 0.5f * static_cast<float>(q % 3);
    auto dense = torch::zeros({rows, cols}, torch::kFloat64);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = m.indptr[r]; q < m.indptr[r + 1]; ++q) dense[r][m.indices[q]] = m.data[q];
    const double lambda = 2.5;
    auto want = torch::inverse(dense.t().matmul(dense) + lambda * torch::eye(cols, torch::kFloat64));
    torch::Tensor p1, p2, p32;
    ASSERT_EQ(inverse_through_user_gram(m, lambda, torch::kFloat64, 1, p1), 0);
    ASSERT_EQ(inverse_through_user_gram(m, lambda, torch::kFloat64, 2, p2), 0);
    EXPECT_TRUE(torch::allclose(p1, want, 1e-9, 1e-12))
        << rows << "x" << cols << ": " << (p1 - want).abs().max().item<double>();
    EXPECT_TRUE(torch::equal(p1, p1.t()));
    EXPECT_TRUE(torch::allclose(p1, p2, 1e-12, 1e-14));  // LAPACK's blocking may follow the thread count
    ASSERT_EQ(inverse_through_user_gram(m, lambda, torch::kFloat32, 2, p32), 0);
    EXPECT_EQ(p32.scalar_type(), torch::kFloat32);
    EXPECT_LT((p32.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5 * want.abs().max().item<double>());
  }
}

TEST(EASE, Float32WeightsAgreeWithFloat64) {
  auto [m, x] = random_rows(300, 60, 0.1, 8);
  auto g = local_gram(m, 1);
  auto b64 = ease_weights(g, 20.0);
  auto b32 = ease_weights(g.to(torch::kFloat32), 20.0);
  EXPECT_EQ(b32.scalar_type(), torch::kFloat32);
  EXPECT_LT((b32.to(torch::kFloat64) - b64).abs().max().item<double>(), 1e-4 * b64.abs().max().item<double>());
  EXPECT_EQ(b32.diagonal().abs().max().item<double>(), 0.0);
}

TEST(EASE, WeightsMatchADenseSolveAndHaveAZeroDiagonal) {
  auto [m, x] = random_rows(80, 20, 0.25, 4);
  auto g = x.to(torch::kFloat64).t().matmul(x.to(torch::kFloat64));
  const double lambda = 3.0;
  auto b = ease_weights(g, lambda);
  auto p = torch::inverse(g + lambda * torch::eye(20, torch::kFloat64));
  auto want = torch::eye(20, torch::kFloat64) - p / p.diagonal().unsqueeze(0);
  want.diagonal().zero_();
  EXPECT_TRUE(torch::allclose(b, want, 1e-9, 1e-12)) << (b - want).abs().max().item<double>();
  EXPECT_EQ(b.diagonal().abs().max().item<double>(), 0.0);
  // The stationarity condition of Steck's objective off the diagonal: (G + lambda I) B = G - P diag(mu).
  auto r = (g + lambda * torch::eye(20, torch::kFloat64)).matmul(b) - g;
  auto off = r - torch::diag(r.diagonal());
  EXPECT_LT(off.abs().max().item<double>(), 1e-8);
}

TEST(EASE, ASingularSystemIsAnInputErrorNamingLambda) {
  // Three items always bought together: G has rank 1, and lambda vanishes next to its entries.
  auto g = torch::full({3, 3}, 1e20, torch::kFloat64);
  try {
    ease_weights(g, 1e-10);
    FAIL() << "solved a singular system";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("raise ease.lambda"), std::string::npos) << e.what();
  }
}

TEST(EASE, BadLambdaAndAMemoryLimitAreConfigErrors) {
  auto err = [](const std::string& yaml) {
    try {
      Config c = parse_config(yaml, "t.yaml");
      ModelContext ctx;
      ctx.items = 50000;
      make_model(c, ctx);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("data: {path: x}\nmodel: {type: ease}\nease: {lambda: [100, -1]}").find("every lambda must be"),
            std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: ease}\nease: {lambda: []}").find("at least one lambda"),
            std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: ease}\nease: {memory_limit_gb: 1}").find("ease.memory_limit_gb"),
            std::string::npos);
  // 50k items: 20 GB in float64, 10 GB in float32.
  EXPECT_NE(err("data: {path: x}\nmodel: {type: ease}\nease: {memory_limit_gb: 15}").find("float32 halves it"),
            std::string::npos);
  EXPECT_EQ(err("data: {path: x}\nmodel: {type: ease}\nease: {memory_limit_gb: 15, precision: float32}"), "");
  EXPECT_NE(err("data: {path: x}\nmodel: {type: ease}\nease: {precision: half}").find("ease.precision"),
            std::string::npos);
  Config c = parse_config("data: {path: x}\nmodel: {type: ease}\nease: {lambda: 250}", "t.yaml");
  EXPECT_EQ(c.section<EASEConfig>().lambda, std::vector<double>{250.0});
  EXPECT_EQ(parse_config(c.to_yaml(), "back.yaml").section<EASEConfig>().lambda, std::vector<double>{250.0});
}

TEST(EASE, TheLambdaGridKeepsTheValidationBestAndBeatsPopularity) {
  auto [dir, c] = linear_run("ease", "ease");
  auto comm = make_mpi_communicator();
  const std::vector<double> grid{0.5, 50, 5000};
  c.section<EASEConfig>().lambda = grid;
  RunResult all = Trainer(c, *comm).run();
  double best = -1;
  int best_at = -1;
  std::vector<double> test_ndcg;
  for (size_t i = 0; i < grid.size(); ++i) {
    Config one = c;
    one.section<EASEConfig>().lambda = {grid[i]};
    one.output.dir = dir + "/one_" + std::to_string(i);
    RunResult r = Trainer(one, *comm).run();
    test_ndcg.push_back(r.test.ndcg100);
    if (r.best_validation.mean_ndcg100() > best) {
      best = r.best_validation.mean_ndcg100();
      best_at = static_cast<int>(i) + 1;
    }
  }
  EXPECT_EQ(all.test.ndcg100, test_ndcg[static_cast<size_t>(best_at - 1)]);  // the best fit is the one tested
  EXPECT_EQ(all.best_epoch, best_at);
  EXPECT_EQ(all.best_validation.mean_ndcg100(), best);
  EXPECT_NE(best_at, 1);  // the smallest lambda is not the answer: the grid matters here
  EXPECT_GT(all.test.mean_ndcg100(), all.popularity_test.mean_ndcg100() + 0.05);
}

TEST(EASE, AFloat32FitRanksLikeTheFloat64One) {
  auto [dir, c] = linear_run("ease32", "ease", 1200, 300, 150, 9);
  auto comm = make_mpi_communicator();
  c.section<EASEConfig>().lambda = {50};
  RunResult f64 = Trainer(c, *comm).run();
  c.section<EASEConfig>().precision = "float32";
  c.output.dir = dir + "/f32";
  Trainer t32(c, *comm);
  RunResult f32 = t32.run();
  EXPECT_EQ(dynamic_cast<EASEModel&>(t32.model()).weights().scalar_type(), torch::kFloat32);
  EXPECT_NEAR(f32.test.mean_ndcg100(), f64.test.mean_ndcg100(), 1e-3);
  EXPECT_GT(f32.test.mean_ndcg100(), f32.popularity_test.mean_ndcg100() + 0.05);
}

// ease.solver: dual (Note [Inverse through the users' Gram]) is what `auto` picks for fewer
// training users than items, and gives the replicated solve's B, best lambda and metrics.
TEST(EASE, TheDualSolveGivesTheReplicatedWeights) {
  auto [dir, c] = linear_run("ease_dual", "ease", 300, 500, 60, 13);
  auto comm = make_mpi_communicator();
  c.section<EASEConfig>().lambda = {5, 50};
  Trainer dual(c, *comm);
  ASSERT_TRUE(dynamic_cast<EASEModel&>(dual.model()).dual());
  RunResult by_users = dual.run();
  c.section<EASEConfig>().solver = "replicated";
  c.output.dir = dir + "/replicated";
  Trainer replicated(c, *comm);
  ASSERT_FALSE(dynamic_cast<EASEModel&>(replicated.model()).dual());
  RunResult by_items = replicated.run();
  const torch::Tensor& b = dynamic_cast<EASEModel&>(dual.model()).weights();
  const torch::Tensor& want = dynamic_cast<EASEModel&>(replicated.model()).weights();
  EXPECT_TRUE(torch::allclose(b, want, 1e-8, 1e-10)) << (b - want).abs().max().item<double>();
  EXPECT_EQ(b.diagonal().abs().max().item<double>(), 0.0);
  EXPECT_EQ(by_users.best_epoch, by_items.best_epoch);
  EXPECT_NEAR(by_users.test.mean_ndcg100(), by_items.test.mean_ndcg100(), 1e-9);
  EXPECT_GT(by_users.test.mean_ndcg100(), by_users.popularity_test.mean_ndcg100() + 0.05);
  // float32 through the users' Gram ranks like float64.
  c.section<EASEConfig>().solver = "dual";
  c.section<EASEConfig>().precision = "float32";
  c.output.dir = dir + "/dual32";
  RunResult f32 = Trainer(c, *comm).run();
  EXPECT_NEAR(f32.test.mean_ndcg100(), by_items.test.mean_ndcg100(), 1e-3);
  // More users than items: auto keeps the direct solve, and a dual that does not fit is refused.
  Config m = linear_run("ease_dual_many", "ease", 600, 200, 60, 13).config;
  EXPECT_FALSE(dynamic_cast<EASEModel&>(Trainer(m, *comm).model()).dual());
  m.section<EASEConfig>().solver = "dual";
  m.section<EASEConfig>().memory_limit_gb = 1e-4;
  try {
    Trainer refused(m, *comm);
    FAIL() << "a dual solve above the memory limit was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("solver dual"), std::string::npos) << e.what();
  }
}

// Projected gradient descent on the same objective, run to convergence: the brute-force reference.
torch::Tensor slim_brute_force(const torch::Tensor& g, std::int64_t j, double l1, double l2) {
  const std::int64_t n = g.size(0);
  auto w = torch::zeros({n}, torch::kFloat64);
  const double step = 1.0 / (torch::linalg_eigvalsh(g).max().item<double>() + l2);
  for (int it = 0; it < 20000; ++it) {
    auto grad = g.matmul(w) - g.select(1, j) + l2 * w + l1;
    w = (w - step * grad).clamp_min(0);
    w[j] = 0;
  }
  return w;
}

TEST(SLIM, ColumnsMatchABruteForceSolverAndSatisfyKKT) {
  auto [m, x] = random_rows(40, 8, 0.35, 6);
  auto g = x.to(torch::kFloat64).t().matmul(x.to(torch::kFloat64));
  const double l2 = 2.0;
  // l1 = 3.5 leaves the items with G_kj <= 3.5 out of the descent (Note [SLIM on the Gram
  // matrix]); the brute force solves over every item, so it checks that they belong at zero.
  std::int64_t skipped = 0, support = 0;
  for (const double l1 : {0.5, 3.5}) {
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      for (std::int64_t j = 0; j < 8; ++j) {
        SparseColumn c = slim_column(g.to(dtype), j, l1, l2, 10000, 1e-12);
        skipped += 7 - c.candidates;
        support += static_cast<std::int64_t>(c.rows.size());
        auto w = torch::zeros({8}, torch::kFloat64);
        for (size_t p = 0; p < c.rows.size(); ++p) {
          EXPECT_GT(c.values[p], 0.0f);
          EXPECT_NE(c.rows[p], j) << "the diagonal stays zero";
          w[c.rows[p]] = c.values[p];
        }
        EXPECT_TRUE(torch::allclose(w, slim_brute_force(g, j, l1, l2), 1e-4, 1e-5)) << "column " << j << ", l1 " << l1;
        // KKT: the gradient vanishes on the support and is >= 0 (within float rounding) off it.
        auto grad = g.matmul(w) - g.select(1, j) + l2 * w + l1;
        for (std::int64_t k = 0; k < 8; ++k) {
          if (k == j) continue;
          if (w[k].item<double>() > 0)
            EXPECT_NEAR(grad[k].item<double>(), 0.0, 1e-4) << "column " << j << ", item " << k;
          else
            EXPECT_GE(grad[k].item<double>(), -1e-4) << "column " << j << ", item " << k;
        }
      }
    }
  }
  EXPECT_GT(skipped, 0) << "no item was left out of a descent: the test does not reach the candidate rule";
  EXPECT_GT(support, 16) << "almost every column is empty";
}

TEST(SLIM, ARunBeatsPopularityAndItsWeightsAreTheColumnSolutions) {
  auto [dir, c] = linear_run("slim", "slim");
  auto comm = make_mpi_communicator();
  Trainer t(c, *comm);
  RunResult r = t.run();
  EXPECT_GT(r.test.mean_ndcg100(), r.popularity_test.mean_ndcg100() + 0.05);
  auto w = dynamic_cast<SLIMModel&>(t.model()).dense_weights();
  EXPECT_EQ(w.diagonal().abs().max().item<float>(), 0.0f);
  EXPECT_GE(w.min().item<float>(), 0.0f);
  EXPECT_GT((w > 0).sum().item<std::int64_t>(), 300);  // not empty
}

// The (l1, l2) grid fits every pair from one G and keeps the validation-best, whose W is the
// one a run of that pair alone gives; bad grids are config errors.
TEST(SLIM, TheGridKeepsTheValidationBestFitOfOneGram) {
  auto [dir, c] = linear_run("slim_grid", "slim");
  auto comm = make_mpi_communicator();
  c.section<SLIMConfig>().l1 = {0.5, 4};
  c.section<SLIMConfig>().l2 = {1, 200};
  Trainer all_t(c, *comm);
  RunResult all = all_t.run();
  double best = -1;
  int best_at = -1;
  torch::Tensor best_w;
  int i = 0;
  for (const double l1 : c.section<SLIMConfig>().l1)
    for (const double l2 : c.section<SLIMConfig>().l2) {
      Config one = c;
      one.section<SLIMConfig>().l1 = {l1};
      one.section<SLIMConfig>().l2 = {l2};
      one.output.dir = dir + "/one_" + std::to_string(i++);
      Trainer t(one, *comm);
      RunResult r = t.run();
      if (r.best_validation.mean_ndcg100() > best) {
        best = r.best_validation.mean_ndcg100();
        best_at = i;
        best_w = dynamic_cast<SLIMModel&>(t.model()).dense_weights();
      }
    }
  EXPECT_EQ(all.best_epoch, best_at);
  EXPECT_EQ(all.best_validation.mean_ndcg100(), best);
  EXPECT_TRUE(torch::equal(dynamic_cast<SLIMModel&>(all_t.model()).dense_weights(), best_w))
      << "the tested W is not the validation-best pair's";
  EXPECT_NE(best_at, 1) << "the first pair wins: the grid does not matter here";

  const auto err = testing::config_error;
  EXPECT_NE(
      err("data: {path: x}\nmodel: {type: slim}\nslim: {l1: [1, -1]}").find("every l1 must be a finite number >= 0"),
      std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: slim}\nslim: {l2: []}").find("at least one l2"), std::string::npos);
  EXPECT_EQ(parse_config("data: {path: x}\nmodel: {type: slim}\nslim: {l1: 0, l2: [5, 50]}", "t.yaml")
                .section<SLIMConfig>()
                .l2,
            (std::vector<double>{5, 50}));
}

// Note [Resumable fits]: a SLIM fit stopped after some columns keeps exactly those columns; a
// model restored from its buffers and progress solves only the others, to the uninterrupted W.
TEST(SLIM, AFitStoppedBetweenColumnsResumesToTheSameWeights) {
  auto [m, x] = random_rows(300, 40, 0.2, 11);
  auto comm = make_mpi_self_communicator();
  SLIMConfig sc;
  sc.l1 = {0.5};
  sc.l2 = {2};
  ModelContext mctx;
  mctx.items = 40;
  SLIMModel whole(sc, mctx), first(sc, mctx), second(sc, mctx);
  whole.fit(0, FitContext{m, 0, *comm, 2, {}});
  EXPECT_FALSE(whole.fit_progress().defined());
  std::atomic<int> polls{0};
  first.fit(0, FitContext{m, 0, *comm, 2, [&] { return ++polls > 15; }});
  const torch::Tensor progress = first.fit_progress();
  ASSERT_TRUE(progress.defined());
  ASSERT_EQ(progress.numel(), 41);
  EXPECT_EQ(progress[0].item<std::int64_t>(), 0);
  const torch::Tensor solved = progress.slice(0, 1).to(torch::kBool);
  EXPECT_EQ(solved.sum().item<std::int64_t>(), 15) << "every poll before the stop solves one column";
  // The part holds exactly the solved columns of the whole.
  const torch::Tensor w = whole.dense_weights();
  EXPECT_TRUE(torch::equal(first.dense_weights(), w * solved.to(torch::kFloat32).unsqueeze(0)));
  EXPECT_GT(first.dense_weights().count_nonzero().item<std::int64_t>(), 0);

  // Through an archive, as a checkpoint carries it.
  std::stringstream bytes;
  torch::serialize::OutputArchive out;
  first.module().save(out);
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  second.module().load(in);
  second.restore_fit_progress(progress);
  std::atomic<int> resumed_polls{0};
  EXPECT_EQ(second.fit(0, FitContext{m, 0, *comm, 2, [&] { return ++resumed_polls < 0; }}), "l1=0.5,l2=2");
  EXPECT_EQ(resumed_polls.load(), 25) << "the resumed fit solves only the missing columns";
  EXPECT_FALSE(second.fit_progress().defined());
  EXPECT_TRUE(torch::equal(second.dense_weights(), w));
  const auto a = whole.module().buffers(), b = second.module().buffers();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i], b[i])) << "buffer " << i << " not in column order";

  // Progress of another candidate is not applied.
  SLIMModel third(sc, mctx);
  auto other = progress.clone();
  other[0] = 1;
  third.restore_fit_progress(other);
  std::atomic<int> fresh_polls{0};
  third.fit(0, FitContext{m, 0, *comm, 1, [&] { return ++fresh_polls < 0; }});
  EXPECT_EQ(fresh_polls.load(), 40);
  EXPECT_TRUE(torch::equal(third.dense_weights(), w));
}

int metrics_lines(const std::string& dir) {
  std::ifstream metrics(dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);)
    EXPECT_NE(line.find("{\"epoch\": " + std::to_string(++lines)), std::string::npos);
  return lines;
}

// A stop request ends an EASE grid after the fit in progress and a SLIM grid inside its fit;
// each writes a checkpoint, and the resumed run's results, weights and log equal an
// uninterrupted run's.
TEST(ClosedForm, AStopRequestCheckpointsAndTheResumedRunEqualsAnUninterruptedOne) {
  const std::string dir = testing::scratch_dir("closed_form_stop");
  const std::string data = testing::make_synthetic_split(dir, 1200, 300, 150, 7);
  auto comm = make_mpi_communicator();
  for (const char* type : {"ease", "slim"}) {
    Config c = testing::small_config(data, dir + "/" + type + "_whole");
    c.model.type = type;
    c.section<EASEConfig>().lambda = {5000, 50, 0.5};
    c.section<SLIMConfig>().l1 = {4, 0.5};
    Trainer whole(c, *comm);
    const RunResult reference = whole.run();

    c.output.dir = dir + "/" + type + "_stopped";
    request_stop();
    Trainer stopped(c, *comm);
    EXPECT_TRUE(stopped.run().stopped_on_signal) << type;
    clear_stop_request();
    const std::string latest = CheckpointStore(c.output.dir).latest();
    // EASE's fit cannot stop: the grid stops after its first candidate. SLIM's stops inside it.
    const std::string expected =
        std::string(type) == "ease" ? "epoch-0001-pass-00-step-000000" : "epoch-0000-pass-00-step-000001";
    EXPECT_NE(latest.find(expected), std::string::npos) << type << ": " << latest;
    EXPECT_EQ(metrics_lines(c.output.dir), std::string(type) == "ease" ? 1 : 0) << type;
    EXPECT_FALSE(testing::file_exists(c.output.dir + "/final.json")) << type;

    Trainer resumed(c, *comm);
    const RunResult r = resumed.run(true);
    EXPECT_FALSE(r.stopped_on_signal);
    EXPECT_EQ(r.best_epoch, reference.best_epoch) << type;
    EXPECT_EQ(r.best_validation.ndcg100, reference.best_validation.ndcg100) << type;
    EXPECT_EQ(r.test.ndcg100, reference.test.ndcg100) << type;
    EXPECT_EQ(r.test.recall20, reference.test.recall20) << type;
    const auto a = whole.model().module().buffers(), b = resumed.model().module().buffers();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << type << " buffer " << i;
    EXPECT_EQ(metrics_lines(c.output.dir), std::string(type) == "ease" ? 3 : 2) << type;
    if (std::string(type) == "ease")
      EXPECT_NE(reference.best_epoch, 3) << "the last lambda wins, so the refit after a resume is not reached";
  }
}

// Every rank of a node holds its own Gram matrix: the default limit is the node's memory shared
// by its ranks, and the refusal names it.
TEST(ClosedForm, TheDefaultMemoryLimitIsTheNodeShareOfEachRank) {
  EXPECT_EQ(gram_memory_limit_bytes(3, 4), 3e9);
  const double node = gram_memory_limit_bytes(0, 1);
  EXPECT_GT(node, 1e8);
  EXPECT_DOUBLE_EQ(gram_memory_limit_bytes(0, 4), node / 4);
  // Items whose float32 G (three copies without LAPACK) fits one rank's share, not a 50th of it.
  const auto items = static_cast<std::int64_t>(std::sqrt(node / 40));
  for (const char* type : {"ease", "slim"}) {
    Config c = parse_config(
        std::string("data: {path: x}\nmodel: {type: ") + type + "}\n" + type + ": {precision: float32}", "t.yaml");
    ModelContext ctx;
    ctx.items = items;
    EXPECT_NO_THROW(make_model(c, ctx)) << type;
    ctx.local_ranks = 50;
    try {
      make_model(c, ctx);
      ADD_FAILURE() << type << ": 50 ranks of a node each got the whole node";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("shared by its 50 rank(s)"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace recvae
