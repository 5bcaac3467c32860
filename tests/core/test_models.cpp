// The autoencoder family behind the Model interface: each model's loss and scores against a
// dense reference written here, training that beats popularity, resume, and the config rules.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "../common/fixtures.h"
#include "../common/model_batch.h"
#include "../common/test_util.h"
#include "recvae/models/registry.h"
#include "recvae/batch/sparse_batch.h"
#include "recvae/dist/comm.h"
#include "recvae/models/autorec.h"
#include "recvae/models/cdae.h"
#include "recvae/models/multdae.h"
#include "recvae/models/multvae.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {
namespace {

using testing::Batch;
using testing::context;
using testing::expect_close;
using testing::kItems;
using testing::scratch_dir;

TEST(MultVAE, LossAndScoresMatchDenseReference) {
  torch::manual_seed(4);
  MultVAEConfig cfg;
  cfg.hidden_dim = 12;
  cfg.latent_dim = 5;
  cfg.anneal_steps = 100;
  MultVAEModel model(cfg, 0.5, context());
  Batch b(0.5, cfg.latent_dim);
  auto& n = model.net();
  const std::int64_t step = 7;
  auto terms = model.loss(b.sparse, {10.0, step});

  auto h = torch::tanh(b.input.matmul(n->q1_w) + n->q1_b);
  auto out = h.matmul(n->q2->weight.t()) + n->q2->bias;
  auto mu = out.narrow(1, 0, 5), logvar = out.narrow(1, 5, 5);
  auto z = mu + b.sparse.noise * (0.5 * logvar).exp();
  auto logits = torch::tanh(z.matmul(n->p1->weight.t()) + n->p1->bias).matmul(n->p2->weight.t()) + n->p2->bias;
  auto mll = (torch::log_softmax(logits, 1) * b.x).sum(1);
  auto kl = (0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1)).sum(1);
  const double beta = 7.0 / 100.0;
  expect_close(terms.loss, -(mll - beta * kl).sum() / 10.0);
  expect_close(terms.mll_sum, mll.sum());
  expect_close(terms.kl_sum, kl.sum());
  EXPECT_DOUBLE_EQ(model.beta_at(0), 0.0);
  EXPECT_DOUBLE_EQ(model.beta_at(50), 0.2);  // capped
  EXPECT_DOUBLE_EQ(model.beta_at(10), 0.1);

  // Scores: z = mu of the clean input.
  auto hc = torch::tanh(b.clean.matmul(n->q1_w) + n->q1_b);
  auto muc = (hc.matmul(n->q2->weight.t()) + n->q2->bias).narrow(1, 0, 5);
  auto want = torch::tanh(muc.matmul(n->p1->weight.t()) + n->p1->bias).matmul(n->p2->weight.t()) + n->p2->bias;
  expect_close(model.scores(b.sparse), want);
  EXPECT_FALSE(model.regularizer({10.0, 0}).defined());  // the VAE has lam = 0
}

TEST(MultDAE, LossScoresAndPenaltyMatchDenseReference) {
  torch::manual_seed(5);
  MultDAEConfig cfg;
  cfg.latent_dim = 7;
  cfg.l2 = 0.01 / 500;
  MultDAEModel model(cfg, 0.5, context());
  Batch b(0.5, 0);
  auto& n = model.net();
  auto terms = model.loss(b.sparse, {9.0, 0});
  auto logits = torch::tanh(b.input.matmul(n->q_w) + n->q_b).matmul(n->p->weight.t()) + n->p->bias;
  auto mll = (torch::log_softmax(logits, 1) * b.x).sum(1);
  expect_close(terms.loss, -mll.sum() / 9.0);
  auto clean_logits = torch::tanh(b.clean.matmul(n->q_w) + n->q_b).matmul(n->p->weight.t()) + n->p->bias;
  expect_close(model.scores(b.sparse), clean_logits);
  // The notebook's 2 * l2_regularizer(lam) = lam * sum |W|^2 over the weights, not the biases.
  expect_close(model.regularizer({9.0, 0}), cfg.l2 * (n->q_w.pow(2).sum() + n->p->weight.pow(2).sum()));
}

TEST(CDAE, LossMatchesDenseLogisticReferenceWithUserVectors) {
  torch::manual_seed(6);
  CDAEConfig cfg;
  cfg.hidden_dim = 6;
  cfg.l2 = 0.01;
  ModelContext ctx = context(20);
  ctx.local_users_lo = 10;  // this "rank" owns users 10..19
  CDAEModel model(cfg, 0.5, ctx);
  {
    torch::NoGradGuard g;
    model.user_vectors().normal_(0, 0.3);
  }
  Batch b(0.5, 0, /*first_user=*/12);
  auto& n = model.net();
  auto terms = model.loss(b.sparse, {8.0, 0});
  auto v = model.user_vectors().narrow(0, 2, 6);
  // Corrupted input: raw values, dropped out and scaled by 1/(1-q) exactly where the batch dropped.
  auto corrupted = torch::where(b.input != 0, b.x * 2.0, torch::zeros_like(b.x));
  auto logits = torch::sigmoid(corrupted.matmul(n->w) + n->b + v).matmul(n->out->weight.t()) + n->out->bias;
  auto p = torch::sigmoid(logits);
  auto ll = (b.x * torch::log(p) + (1 - b.x) * torch::log(1 - p)).sum(1);
  auto penalty = 0.5 * cfg.l2 * v.pow(2).sum(1);
  expect_close(terms.loss, -(ll - penalty).sum() / 8.0, 1e-4, 1e-4);
  expect_close(terms.mll_sum, ll.sum(), 1e-4, 1e-4);
  // Gradients reach only the batch's user rows.
  terms.loss.backward();
  auto g = model.user_vectors().grad();
  EXPECT_EQ(g.narrow(0, 0, 2).abs().sum().item<double>(), 0.0);
  EXPECT_GT(g.narrow(0, 2, 5).abs().sum().item<double>(), 0.0);
  expect_close(model.regularizer({8.0, 0}), 0.5 * cfg.l2 * (n->w.pow(2).sum() + n->out->weight.pow(2).sum()));
}

TEST(CDAE, HeldOutUsersFitTheirVectorOnTheFoldInWithTheNetworkFrozen) {
  torch::manual_seed(7);
  CDAEConfig cfg;
  cfg.hidden_dim = 6;
  cfg.foldin_steps = 30;
  cfg.l2 = 0.05;
  CDAEModel model(cfg, 0.0, context());
  Batch b(0.0, 0);
  auto before = model.net()->w.clone();
  auto& n = model.net();
  auto zero_v_logits = torch::sigmoid(b.x.matmul(n->w) + n->b).matmul(n->out->weight.t()) + n->out->bias;
  auto fitted = model.scores(b.sparse);
  EXPECT_TRUE(torch::equal(before, model.net()->w));  // network untouched
  EXPECT_FALSE(model.net()->w.grad().defined());      // and given no gradient
  // The fitted vectors raise the fold-in likelihood over V_u = 0.
  auto ll = [&](const torch::Tensor& logits) {
    auto p = torch::sigmoid(logits);
    return (b.x * torch::log(p) + (1 - b.x) * torch::log(1 - p)).sum().item<double>();
  };
  EXPECT_GT(ll(fitted), ll(zero_v_logits) + 1e-3);
  // Note [Fold-in gradient]: the written-out gradient takes the steps that autograd's would, on
  // the same objective (log-likelihood minus l2/2 |V_u|^2), from the dense rows.
  auto ref_v = torch::zeros({b.x.size(0), cfg.hidden_dim}).requires_grad_(true);
  torch::optim::Adam ref_opt(std::vector<torch::Tensor>{ref_v}, torch::optim::AdamOptions(cfg.foldin_lr));
  auto ref_logits = [&] {
    return torch::sigmoid(b.x.matmul(n->w) + n->b + ref_v).matmul(n->out->weight.t()) + n->out->bias;
  };
  for (int s = 0; s < cfg.foldin_steps; ++s) {
    auto l = ref_logits();
    auto ll_rows = (b.x * torch::log_sigmoid(l) + (1 - b.x) * torch::log_sigmoid(-l)).sum(1);
    auto objective = -(ll_rows - 0.5 * cfg.l2 * ref_v.pow(2).sum(1)).sum();
    ref_v.mutable_grad() = torch::autograd::grad({objective}, {ref_v})[0];
    ref_opt.step();
  }
  torch::NoGradGuard no_grad;
  expect_close(fitted, ref_logits(), 1e-4, 1e-4);
  CDAEConfig none = cfg;
  none.foldin_steps = 0;
  CDAEModel unfitted(none, 0.0, context());
  EXPECT_EQ(unfitted.scores(b.sparse).sizes(), fitted.sizes());
}

TEST(AutoRec, LossScoresAndPenaltyMatchDenseReference) {
  torch::manual_seed(8);
  AutoRecConfig cfg;
  cfg.hidden_dim = 9;
  cfg.l2 = 2.0;
  AutoRecModel model(cfg, 0.0, context(120));
  Batch b(0.0, 0);
  auto& n = model.net();
  auto terms = model.loss(b.sparse, {6.0, 0});
  auto out = torch::sigmoid(b.x.matmul(n->v) + n->mu).matmul(n->out->weight.t()) + n->out->bias;
  auto err = (b.x - out).pow(2).sum(1);
  expect_close(terms.loss, err.sum() / 6.0);
  expect_close(terms.mll_sum, -err.sum());
  expect_close(model.scores(b.sparse), out);
  expect_close(model.regularizer({6.0, 0}), 0.5 * 2.0 / 120.0 * (n->v.pow(2).sum() + n->out->weight.pow(2).sum()));
}

// ------------------------------------------------------------------------------------------
// Whole runs on a planted synthetic set.

class ModelRunTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(scratch_dir("models"));
    data_ = new std::string(testing::make_synthetic_split(*dir_, 1200, 300, 150, 7));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete data_;
  }
  static Config config(const std::string& name, int epochs) {
    Config c = testing::small_config(*data_, scratch_dir(GetParam() + "_" + name));
    c.model.type = GetParam();
    c.section<MultVAEConfig>().hidden_dim = 64;
    c.section<MultVAEConfig>().latent_dim = 16;
    c.section<MultVAEConfig>().anneal_steps = 200;
    c.section<MultDAEConfig>().latent_dim = 32;
    c.section<CDAEConfig>().hidden_dim = 32;
    c.section<AutoRecConfig>().hidden_dim = 64;
    c.train.epochs = epochs;
    c.train.batch_size = 64;
    return c;
  }
  static std::string* dir_;
  static std::string* data_;
};
std::string* ModelRunTest::dir_ = nullptr;
std::string* ModelRunTest::data_ = nullptr;

TEST_P(ModelRunTest, BeatsPopularityClearly) {
  auto comm = make_mpi_communicator();
  Config c = config("quality", 10);
  if (GetParam() == "autorec") c.train.lr = 3e-3;
  RunResult r = Trainer(c, *comm).run();
  EXPECT_GT(r.test.mean_ndcg100(), r.popularity_test.mean_ndcg100() + 0.05)
      << GetParam() << ": " << r.test.mean_ndcg100() << " vs popularity " << r.popularity_test.mean_ndcg100();
  std::ifstream fin(c.output.dir + "/final.json");
  std::stringstream ss;
  ss << fin.rdbuf();
  EXPECT_NE(ss.str().find("\"model\": \"" + GetParam() + "\""), std::string::npos) << ss.str();
}

TEST_P(ModelRunTest, ResumedRunEqualsUninterruptedRun) {
  auto comm = make_mpi_communicator();
  Trainer full(config("full", 2), *comm);
  RunResult uninterrupted = full.run();
  Config part = config("part", 1);
  Trainer(part, *comm).run();
  part.train.epochs = 2;
  Trainer resumed(part, *comm);
  RunResult r = resumed.run(/*resume=*/true);
  EXPECT_EQ(r.best_epoch, uninterrupted.best_epoch);
  EXPECT_EQ(r.test.ndcg100, uninterrupted.test.ndcg100);
  EXPECT_EQ(r.test.recall20, uninterrupted.test.recall20);
  EXPECT_EQ(r.best_validation.ndcg100, uninterrupted.best_validation.ndcg100);
  EXPECT_EQ(resumed.global_step(), full.global_step());
  EXPECT_EQ(full.global_step(), 2 * ((full.num_train_users() + 63) / 64));  // one joint pass per epoch
}

TEST_P(ModelRunTest, ResumingAnotherModelTypeIsRefused) {
  auto comm = make_mpi_communicator();
  Config c = config("other_type", 1);
  Trainer(c, *comm).run();
  Config other = c;
  other.model.type = GetParam() == "multvae" ? "multdae" : "multvae";
  try {
    Trainer(other, *comm).run(true);
    FAIL() << "resumed a checkpoint of another model type";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint is of model.type " + GetParam()), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Family, ModelRunTest, ::testing::Values("multvae", "multdae", "cdae", "autorec"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// ------------------------------------------------------------------------------------------
// Config rules for model types.

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "t.yaml", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, UnknownTypeNamesTheValidOnes) {
  const std::string e = error_of("data: {path: x}\nmodel: {type: svd}");
  EXPECT_NE(e.find("'svd' is not one of recvae|multvae|multdae|cdae|autorec"), std::string::npos) << e;
}

TEST(ModelConfig, AKeyOfAnotherModelIsAnErrorNamingIt) {
  std::string e = error_of("data: {path: x}\nmodel: {type: multvae}\nrecvae: {gamma: 0.01}");
  EXPECT_NE(e.find("section 'recvae' configures model.type recvae, but this run's model.type is multvae"),
            std::string::npos)
      << e;
  e = error_of("data: {path: x}", {"cdae.hidden_dim=10"});
  EXPECT_NE(e.find("section 'cdae'"), std::string::npos) << e;
  e = error_of("data: {path: x}\nmodel: {hidden_dim: 10}");
  EXPECT_NE(e.find("recvae.hidden_dim"), std::string::npos) << e;  // the moved key is pointed to
  EXPECT_EQ(error_of("data: {path: x}\nmodel: {type: cdae}\ncdae: {hidden_dim: 10}"), "");
}

TEST(ModelConfig, SharedKeysTakeTheModelsDefaultsAndResolvedConfigHasOnlyItsSection) {
  Config c = parse_config("data: {path: x}\nmodel: {type: multvae}", "t.yaml");
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.train.dropout, 0.5);
  Config r = parse_config("data: {path: x}", "t.yaml");
  EXPECT_DOUBLE_EQ(r.train.lr, 5e-4);
  const std::string yaml = c.to_yaml();
  EXPECT_NE(yaml.find("multvae:"), std::string::npos);
  EXPECT_EQ(yaml.find("recvae:"), std::string::npos) << yaml;
  Config back = parse_config(yaml, "back.yaml");  // the resolved config is itself valid
  EXPECT_EQ(back.model.type, "multvae");
}

}  // namespace
}  // namespace recvae
