// WMF and PMF by alternating least squares (models/wmf.h): one solve against the dense normal
// equations, the objective falling at every half-step, fold-in against a dense solve, resume,
// the item-major copy of train in the split file (and adding it to an old file), bad input.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../common/fixtures.h"
#include "../common/model_batch.h"
#include "../common/test_util.h"
#include "recvae/models/registry.h"
#include "recvae/data/csr.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/dist/comm.h"
#include "recvae/models/wmf.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {
namespace {

CsrMatrix dense_to_csr(const torch::Tensor& d) {
  std::vector<std::int64_t> r;
  std::vector<std::int32_t> c;
  std::vector<float> v;
  auto nz = d.nonzero();
  for (std::int64_t k = 0; k < nz.size(0); ++k) {
    r.push_back(nz[k][0].item<std::int64_t>());
    c.push_back(static_cast<std::int32_t>(nz[k][1].item<std::int64_t>()));
    v.push_back(d[r.back()][c.back()].item<float>());
  }
  return CsrMatrix::from_triplets(d.size(0), d.size(1), r, c, v);
}

// The normal equations of one row, solved densely in float64.
torch::Tensor dense_row_solution(const torch::Tensor& f, const torch::Tensor& xr, const ALSObjective& o,
                                 std::int64_t others) {
  auto f64 = f.to(torch::kFloat64);
  auto x64 = xr.to(torch::kFloat64);
  const std::int64_t k = f.size(1);
  const double reg = o.row_regularization(x64.ne(0).sum().item<std::int64_t>(), others);
  auto a = o.unobserved_weight * f64.t().matmul(f64) + reg * torch::eye(k, torch::kFloat64);
  torch::Tensor b;
  if (o.observed_in_gram) {
    auto conf = (1 + o.alpha * x64) * x64.ne(0).to(torch::kFloat64);  // a_ui on observed entries, 0 elsewhere
    a = a + f64.t().matmul(f64 * conf.unsqueeze(1));
    b = f64.t().matmul(conf);
  } else {
    b = f64.t().matmul(x64.ne(0).to(torch::kFloat64));  // PMF: every entry, target x in {0, 1}
  }
  return torch::linalg_solve(a, b);
}

// WMF settings for the small count-data matrices below.
WMFConfig count_data_wmf(std::int64_t dim) {
  WMFConfig w;
  w.dim = dim;
  w.regularization = 0.05;
  w.unobserved_weight = 0.3;
  w.alpha = 2.0;
  return w;
}

TEST(ALS, OneSolveMatchesTheDenseNormalEquationsForWMFAndPMF) {
  torch::manual_seed(1);
  auto x = (torch::rand({30, 25}) < 0.2).to(torch::kFloat32) * (1 + torch::randint(0, 3, {30, 25}));  // counts
  x[4].zero_();  // a row without observations
  const CsrMatrix m = dense_to_csr(x);
  auto f = torch::randn({25, 6}) * 0.3;
  WMFConfig w = count_data_wmf(6);
  PMFConfig p;
  p.dim = 6;
  p.regularization = 0.5;
  // Both routes: the build's default (for WMF per-row LAPACK on the CPU; for PMF one system shared
  // by every row, Note [Rows that share one system]) and the batched one that GPUs and builds
  // without LAPACK take (a factorisation per row for PMF too).
  for (const bool batched : {false, true})
    for (const ALSObjective& o : {wmf_objective(w), pmf_objective(p)}) {
      auto got = batched ? als_solve_rows_batched(f, f.t().matmul(f), m, o, 25, 0, "test")
                         : als_solve_rows(f, f.t().matmul(f), m, o, 25, 0, "test");
      for (std::int64_t r = 0; r < 30; ++r) {
        auto want = dense_row_solution(f, x[r], o, 25);
        EXPECT_LT((got[r].to(torch::kFloat64) - want).abs().max().item<double>(),
                  1e-4 * (1 + want.abs().max().item<double>()))
            << "row " << r << (o.observed_in_gram ? " wmf" : " pmf") << (batched ? " batched" : "");
      }
      EXPECT_EQ(got[4].abs().max().item<double>(), 0.0);  // nothing observed: w = 0
    }
  EXPECT_TRUE(pmf_objective(p).rows_share_one_system());
  EXPECT_FALSE(wmf_objective(w).rows_share_one_system());
}

// Note [Conjugate-gradient rows]: with enough steps CG reaches the exact solution (k steps in exact
// arithmetic), a few steps from a good start stay near it, and the steps only ever move a row
// towards it.
TEST(ALS, ConjugateGradientRowsApproachTheExactSolve) {
  torch::manual_seed(2);
  auto x = (torch::rand({40, 30}) < 0.25).to(torch::kFloat32) * (1 + torch::randint(0, 3, {40, 30}));
  const CsrMatrix m = dense_to_csr(x);
  auto f = torch::randn({30, 8}) * 0.3;
  WMFConfig w = count_data_wmf(8);
  const ALSObjective exact = wmf_objective(w);
  EXPECT_EQ(exact.cg_steps, 0);
  const auto gram = f.t().matmul(f);
  const auto want = als_solve_rows(f, gram, m, exact, 30, 0, "test");
  w.solver = "cg";
  w.cg_steps = 50;
  auto cg = wmf_objective(w);
  EXPECT_EQ(cg.cg_steps, 50);
  const auto many = als_solve_rows(f, gram, m, cg, 30, 0, "test");
  EXPECT_LT((many - want).abs().max().item<double>(), 1e-4 * (1 + want.abs().max().item<double>()));
  // Three steps from a perturbed start: closer to the solution than the start was.
  cg.cg_steps = 3;
  const auto start = want + 0.1 * torch::randn_like(want);
  const auto three = als_solve_rows(f, gram, m, cg, 30, 0, "test", start);
  EXPECT_LT((three - want).norm().item<double>(), 0.5 * (start - want).norm().item<double>());
  EXPECT_FALSE(torch::equal(three, start));
}

TEST(ALS, ASingularSystemNamesTheRow) {
  auto f = torch::zeros({5, 3});  // all-zero factors: alpha_0 F^T F = 0
  CsrMatrix m = dense_to_csr(torch::eye(5));
  WMFConfig w;
  w.dim = 3;
  w.regularization = 0;
  for (const bool batched : {false, true}) {
    try {
      if (batched)
        als_solve_rows_batched(f, f.t().matmul(f), m, wmf_objective(w), 5, 100, "user step");
      else
        als_solve_rows(f, f.t().matmul(f), m, wmf_objective(w), 5, 100, "user step");
      FAIL() << "solved a singular system" << (batched ? " (batched)" : "");
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("user step: the system of row 10"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("raise the regularization"), std::string::npos) << e.what();
    }
  }
  // PMF's one shared system (Note [Rows that share one system]) is refused as a whole.
  PMFConfig p;
  p.dim = 3;
  p.regularization = 0;
  try {
    als_solve_rows(f, f.t().matmul(f), m, pmf_objective(p), 5, 100, "item step");
    FAIL() << "solved a singular shared system";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("item step: the system that every row shares is not positive definite"),
              std::string::npos)
        << e.what();
  }
}

class ALSRun : public ::testing::Test {
 protected:
  static const std::string& data() { return testing::shared_synthetic_split("als", 900, 250, 100, 13); }
  static Config config(const std::string& type, const std::string& name, int epochs) {
    Config c = testing::small_config(data(), testing::scratch_dir(name));
    c.model.type = type;
    c.train.epochs = epochs;
    c.section<WMFConfig>().dim = 16;
    c.section<WMFConfig>().regularization = 0.01;
    c.section<WMFConfig>().unobserved_weight = 0.1;
    c.section<PMFConfig>().dim = 16;
    c.section<PMFConfig>().regularization = 5;
    return c;
  }
};

TEST_F(ALSRun, TheObjectiveFallsAtEveryHalfStep) {
  auto comm = make_mpi_communicator();
  for (const char* type : {"wmf", "pmf"}) {
    Trainer t(config(type, std::string("halves_") + type, 1), *comm);
    auto& m = dynamic_cast<ALSModel&>(t.model());
    SplitFile file(data());
    const CsrMatrix train = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain));
    FitContext ctx{train, 0, *comm, 1, {}};
    m.user_step(ctx);
    double last = m.objective(ctx);
    for (int half = 0; half < 6; ++half) {
      if (half % 2 == 0)
        m.item_step(ctx);
      else
        m.user_step(ctx);
      const double now = m.objective(ctx);
      EXPECT_LE(now, last * (1 + 1e-6)) << type << " half-step " << half;
      last = now;
    }
  }
}

TEST_F(ALSRun, FoldInIsOneDenseSolveAgainstTheItemFactors) {
  auto comm = make_mpi_communicator();
  Config c = config("wmf", "foldin", 2);
  Trainer t(c, *comm);
  t.run();
  auto& m = dynamic_cast<ALSModel&>(t.model());
  // A hand-made batch of 6 users over the first 40 items.
  testing::Batch b(0.0, 0);
  auto scores = m.scores(b.sparse);
  auto v = m.item_factors();
  const ALSObjective o = wmf_objective(c.section<WMFConfig>());
  for (std::int64_t r = 0; r < 6; ++r) {
    auto x = torch::zeros({v.size(0)});
    x.narrow(0, 0, testing::kItems).copy_(b.x[r]);
    auto w = dense_row_solution(v, x, o, v.size(0));
    auto want = v.to(torch::kFloat64).matmul(w);
    EXPECT_LT((scores[r].to(torch::kFloat64) - want).abs().max().item<double>(),
              1e-4 * (1 + want.abs().max().item<double>()));
  }
}

TEST_F(ALSRun, BothBeatPopularityAndAResumeEqualsTheUninterruptedRun) {
  auto comm = make_mpi_communicator();
  for (const char* type : {"wmf", "pmf"}) {
    RunResult full = Trainer(config(type, std::string("full_") + type, 3), *comm).run();
    EXPECT_GT(full.test.mean_ndcg100(), full.popularity_test.mean_ndcg100() + 0.05) << type;
    Config part = config(type, std::string("part_") + type, 1);
    Trainer(part, *comm).run();
    part.train.epochs = 3;
    RunResult resumed = Trainer(part, *comm).run(true);
    EXPECT_EQ(resumed.best_epoch, full.best_epoch) << type;
    EXPECT_EQ(resumed.test.ndcg100, full.test.ndcg100) << type;
  }
}

TEST_F(ALSRun, AFileWithoutTheItemMajorCopySaysHowToAddItAndGetsIt) {
  const std::string path = testing::scratch_dir("als_no_csc") + "/no_csc.h5";
  std::filesystem::copy_file(data(), path, std::filesystem::copy_options::overwrite_existing);
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, split::kTrainItemMajor, H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  EXPECT_FALSE(SplitFile(path).has_item_major());
  auto comm = make_mpi_communicator();
  Config c = config("wmf", "no_csc", 1);
  c.data.path = path;
  try {
    Trainer t(c, *comm);
    FAIL() << "trained WMF without the item-major copy";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("recvae_prep --add-csc " + path), std::string::npos) << e.what();
  }
  add_item_major_copy(path);
  SplitFile file(path);
  ASSERT_TRUE(file.has_item_major());
  const CsrMatrix t = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain)).transposed();
  const CsrMatrix csc = file.read_item_columns(0, file.num_items());
  EXPECT_EQ(csc.indptr, t.indptr);
  EXPECT_EQ(csc.indices, t.indices);
  EXPECT_EQ(csc.data, t.data);
  EXPECT_EQ(csc.cols, file.num_rows(split::kTrain));
  const CsrMatrix part = file.read_item_columns(10, 20);  // a range, as a rank reads it
  EXPECT_EQ(part.rows, 10);
  EXPECT_EQ(part.nnz(), t.indptr[20] - t.indptr[10]);
  EXPECT_THROW(add_item_major_copy(path), InputError);  // already there
}

TEST(CsrTranspose, IsTheTransposeAndRoundTrips) {
  torch::manual_seed(4);
  auto d = (torch::rand({17, 11}) < 0.3).to(torch::kFloat32) * torch::rand({17, 11});
  const CsrMatrix m = dense_to_csr(d);
  const CsrMatrix t = m.transposed();
  EXPECT_NO_THROW(t.validate("t"));
  EXPECT_EQ(t.rows, 11);
  const CsrMatrix back = t.transposed();
  EXPECT_EQ(back.indptr, m.indptr);
  EXPECT_EQ(back.indices, m.indices);
  EXPECT_EQ(back.data, m.data);
  EXPECT_EQ(dense_to_csr(d.t().contiguous()).indices, t.indices);
}

TEST(ALSConfig, BadValuesAreConfigErrors) {
  const auto err = testing::config_error;
  EXPECT_NE(err("data: {path: x}\nmodel: {type: wmf}\nwmf: {dim: 0}").find("wmf.dim"), std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: wmf}\nwmf: {unobserved_weight: -1}").find("wmf.unobserved_weight"),
            std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: pmf}\npmf: {regularization: -0.5}").find("pmf.regularization"),
            std::string::npos);
  EXPECT_EQ(parse_config("data: {path: x}\nmodel: {type: wmf}", "t.yaml").train.epochs, 16);
}

}  // namespace
}  // namespace recvae
