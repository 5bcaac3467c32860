// ImplicitSLIM (models/implicit_slim.h): the distributed G V product against a dense one, the
// update against a dense transcription of the authors' formula, RecVAE's epoch hook (which
// epochs, which tensors), resume across and inside an updated epoch, and config errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/models/recvae.h"
#include "recvae/models/registry.h"
#include "recvae/data/csr.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/dist/comm.h"
#include "recvae/linalg/gram.h"
#include "recvae/models/implicit_slim.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {
namespace {

// Random binary rows whose item popularity spreads widely (so a threshold cuts some items).
std::pair<CsrMatrix, torch::Tensor> skewed_rows(std::int64_t rows, std::int64_t cols, int seed) {
  torch::manual_seed(seed);
  auto p = torch::linspace(0.02, 0.6, cols, torch::kFloat64).unsqueeze(0).expand({rows, cols});
  auto dense = (torch::rand({rows, cols}, torch::kFloat64) < p).to(torch::kFloat32);
  std::vector<std::int64_t> r;
  std::vector<std::int32_t> c;
  std::vector<float> v;
  auto nz = dense.nonzero();
  for (std::int64_t k = 0; k < nz.size(0); ++k) {
    r.push_back(nz[k][0].item<std::int64_t>());
    c.push_back(static_cast<std::int32_t>(nz[k][1].item<std::int64_t>()));
    v.push_back(1.f);
  }
  return {CsrMatrix::from_triplets(rows, cols, r, c, v), dense.to(torch::kFloat64)};
}

// The authors' utils.implicit_slim, transcribed with dense tensors in their [d, items] layout.
torch::Tensor authors_formula(const torch::Tensor& w, const torch::Tensor& x, double lambda, double alpha, double thr) {
  auto g = x.t().matmul(x);
  auto counts = x.sum(0);
  auto a = w.clone();
  a.index_put_({torch::indexing::Slice(), counts < thr}, 0.0);
  auto d = (counts + lambda).reciprocal();
  auto m = (lambda * a + a.matmul(g)) * d * d;
  auto ainv_c = lambda * m + m.matmul(g);
  auto ainv_c_at = ainv_c.matmul(a.t());
  auto eye = torch::eye(a.size(0), torch::kFloat64);
  auto ac = ainv_c - ainv_c_at.matmul(torch::inverse(eye / alpha + ainv_c_at)).matmul(ainv_c);
  return alpha * w.matmul(a.t()).matmul(ac);
}

TEST(GramTimes, EqualsTheDenseProductForAnyThreadCount) {
  auto [m, x] = skewed_rows(90, 40, 1);
  auto v = torch::randn({40, 7}, torch::kFloat64);
  auto one = local_gram_times(m, v, 1);
  EXPECT_LT((one - x.t().matmul(x).matmul(v)).abs().max().item<double>(), 1e-10);
  EXPECT_TRUE(torch::equal(local_gram_times(m, v, 3), one));
  auto comm = make_mpi_communicator();
  EXPECT_TRUE(torch::equal(distributed_item_sums(m, *comm), x.sum(0)));
}

TEST(ImplicitSLIM, MatchesTheAuthorsFormula) {
  auto [m, x] = skewed_rows(120, 50, 2);
  auto comm = make_mpi_communicator();
  ImplicitSLIMConfig c;
  c.lambda = 7;
  c.alpha = 0.5;
  c.threshold = 20;  // cuts the least popular items
  ASSERT_GT((x.sum(0) < c.threshold).sum().item<int>(), 5);
  ASSERT_GT((x.sum(0) >= c.threshold).sum().item<int>(), 5);
  auto e = torch::randn({50, 6}, torch::kFloat32) * 0.1;  // item-major, as our layers store it
  auto got = implicit_slim(e, m, *comm, c, 2);
  auto want = authors_formula(e.to(torch::kFloat64).t(), x, c.lambda, c.alpha, c.threshold).t();
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-9 * want.abs().max().item<double>());
  EXPECT_GT(want.abs().max().item<double>(), 0.0);
  // A threshold above every count removes every item: nothing is left to project.
  c.threshold = 1e9;
  EXPECT_EQ(implicit_slim(e, m, *comm, c, 1).abs().max().item<double>(), 0.0);
}

class ImplicitSLIMRun : public ::testing::Test {
 protected:
  static const std::string& data() { return testing::shared_synthetic_split("islim", 900, 250, 100, 11); }
  void TearDown() override { clear_stop_request(); }
  static Config config(const std::string& name, int epochs, int every) {
    Config c = testing::small_config(data(), testing::scratch_dir(name));
    c.train.epochs = epochs;
    c.train.batch_size = 64;
    c.model.implicit_slim.every = every;
    c.model.implicit_slim.lambda = 50;
    c.model.implicit_slim.threshold = 5;
    return c;
  }
};

TEST_F(ImplicitSLIMRun, TheHookReplacesBothEmbeddingsEveryNthEpochOnly) {
  auto comm = make_mpi_communicator();
  Config c = config("hook", 3, 2);
  Trainer t(c, *comm);
  SplitFile file(data());
  const CsrMatrix train = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain));
  FitContext ctx{train, 0, *comm, 1, {}};
  RecVAE& net = testing::recvae_net(t);
  auto w1 = net->encoder->w1.detach().clone(), wd = net->decoder->weight.detach().clone();
  auto others = net->encoder->b1.detach().clone();
  EXPECT_FALSE(dynamic_cast<RecVAEModel&>(t.model()).before_epoch(0, ctx));  // epoch 1 of every-2: untouched
  EXPECT_TRUE(torch::equal(net->encoder->w1, w1));
  EXPECT_TRUE(
      dynamic_cast<RecVAEModel&>(t.model()).before_epoch(1, ctx));  // epoch 2: both replaced by their projections
  EXPECT_LT((net->encoder->w1 - implicit_slim(w1, train, *comm, c.model.implicit_slim, 1).to(torch::kFloat32))
                .abs()
                .max()
                .item<double>(),
            1e-6);
  EXPECT_LT((net->decoder->weight - implicit_slim(wd, train, *comm, c.model.implicit_slim, 1).to(torch::kFloat32))
                .abs()
                .max()
                .item<double>(),
            1e-6);
  EXPECT_FALSE(torch::equal(net->encoder->w1, w1));
  EXPECT_TRUE(torch::equal(net->encoder->b1, others));  // nothing else moves
}

TEST_F(ImplicitSLIMRun, ResumeAcrossAndInsideAnUpdatedEpochEqualsTheUninterruptedRun) {
  auto comm = make_mpi_communicator();
  RunResult full = Trainer(config("full", 3, 2), *comm).run();
  RunResult plain = Trainer(config("plain", 3, 0), *comm).run();
  EXPECT_NE(full.best_validation.ndcg100, plain.best_validation.ndcg100);  // the update did something

  // Stopped after epoch 1: the update of epoch 2 runs on resume.
  Config part = config("part", 1, 2);
  Trainer(part, *comm).run();
  part.train.epochs = 3;
  RunResult resumed = Trainer(part, *comm).run(true);
  EXPECT_EQ(resumed.best_validation.ndcg100, full.best_validation.ndcg100);
  EXPECT_EQ(resumed.test.ndcg100, full.test.ndcg100);

  // Stopped after the first step of an updated epoch: the update is not applied twice.
  Config every1 = config("every1_full", 2, 1);
  RunResult every1_full = Trainer(every1, *comm).run();
  Config stop = config("every1_stop", 2, 1);
  request_stop();
  EXPECT_TRUE(Trainer(stop, *comm).run().stopped_on_signal);
  clear_stop_request();
  RunResult after = Trainer(stop, *comm).run(true);
  EXPECT_EQ(after.best_validation.ndcg100, every1_full.best_validation.ndcg100);
  EXPECT_EQ(after.test.ndcg100, every1_full.test.ndcg100);
}

TEST(ImplicitSLIMConfig, ParsesRoundTripsAndRefusesBadValues) {
  Config c = parse_config(
      "data: {path: x}\nmodel: {type: recvae, implicit_slim: {every: 10, lambda: 500, alpha: 1, threshold: 1000}}",
      "t.yaml");
  EXPECT_EQ(c.model.implicit_slim.every, 10);
  EXPECT_EQ(c.model.implicit_slim.threshold, 1000);
  Config back = parse_config(c.to_yaml(), "back.yaml");
  EXPECT_EQ(back.model.implicit_slim.every, 10);
  EXPECT_EQ(back.model.implicit_slim.lambda, 500);
  EXPECT_EQ(parse_config("data: {path: x}\nmodel: {type: recvae}", "t.yaml", {"model.implicit_slim={every: 5}"})
                .model.implicit_slim.every,
            5);
  const auto err = testing::config_error;
  EXPECT_NE(err("data: {path: x}\nmodel: {type: recvae, implicit_slim: {every: -1}}").find("model.implicit_slim.every"),
            std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: recvae, implicit_slim: {lambda: 0}}").find("must be > 0"),
            std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: recvae, implicit_slim: {step: 10}}").find("unknown key"),
            std::string::npos);
  EXPECT_NE(err("data: {path: x}\nmodel: {type: recvae, implicit_slim: 10}").find("expected a mapping"),
            std::string::npos);
  EXPECT_NE(
      err("data: {path: x}\nmodel: {type: multvae, implicit_slim: {every: 10}}").find("applies to model.type recvae"),
      std::string::npos);
}

}  // namespace
}  // namespace recvae
