// RaCT (models/ract.h): the critic's target and features against the metrics code and dense
// references, the phases of a run (the critic learns on a fixed actor, fine-tuning raises the
// actor's validation NDCG), resume in the middle of every phase, and the actor's loading rules.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "../common/fixtures.h"
#include "../common/model_batch.h"
#include "../common/test_util.h"
#include "recvae/models/registry.h"
#include "recvae/batch/batch_plan.h"
#include "recvae/batch/sparse_batch.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/dist/comm.h"
#include "recvae/eval/metrics.h"
#include "recvae/models/ract.h"
#include "recvae/linalg/sparse_ops.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"
#include "recvae/models/multvae.h"

namespace recvae {
namespace {

using testing::Batch;
using testing::kItems;
using testing::scratch_dir;

// Items of row r whose batch value is non-zero and whose input is (seen) or is not (unseen) zero.
std::vector<std::int32_t> row_items(const Batch& b, std::int64_t r, bool seen) {
  std::vector<std::int32_t> out;
  for (std::int32_t i = 0; i < kItems; ++i)
    if (b.x[r][i].item<float>() != 0 && (b.input[r][i].item<float>() != 0) == seen) out.push_back(i);
  return out;
}

TEST(RaCT, UnseenNdcgEqualsTheMetricsCodeOnTheDroppedItems) {
  Batch b(0.5, 0);
  torch::manual_seed(11);
  auto logits = torch::randn({b.rows, kItems});
  auto got = unseen_ndcg(logits, b.sparse, 100);
  ASSERT_EQ(got.size(0), b.rows);
  int compared = 0;
  for (std::int64_t r = 0; r < b.rows; ++r) {
    auto seen = row_items(b, r, true), unseen = row_items(b, r, false);
    if (unseen.empty()) {
      EXPECT_EQ(got[r].item<float>(), 0.0f) << "row " << r << " has nothing unseen";
      continue;
    }
    auto row = logits[r].contiguous();
    auto ranked = top_k(row.data_ptr<float>(), kItems, seen.data(), static_cast<std::int64_t>(seen.size()), 100);
    const double want = ndcg_at_k(ranked, unseen.data(), static_cast<std::int64_t>(unseen.size()), 100);
    EXPECT_NEAR(got[r].item<float>(), want, 1e-5) << "row " << r;
    ++compared;
  }
  EXPECT_GE(compared, 3);  // the dropout left unseen items in several rows
}

TEST(RaCT, UnseenNdcgOfAHandMadeRanking) {
  Batch b(0.5, 0);
  std::int64_t r = 0;  // a row with both a seen and an unseen item
  while (r < b.rows && (row_items(b, r, true).empty() || row_items(b, r, false).empty())) ++r;
  ASSERT_LT(r, b.rows);
  const auto seen = row_items(b, r, true), unseen = row_items(b, r, false);
  std::int32_t miss = 0;  // an item the user does not hold
  while (b.x[r][miss].item<float>() != 0) ++miss;
  auto logits = torch::zeros({b.rows, kItems});
  for (auto i : seen) logits[r][i] = 10;                                           // excluded from the ranking: seen
  logits[r][miss] = 3;                                                             // rank 1: a miss
  for (size_t j = 0; j < unseen.size(); ++j) logits[r][unseen[j]] = 2 - 0.01 * j;  // ranks 2, 3, ...
  double dcg = 0, idcg = 0;
  for (size_t j = 0; j < unseen.size(); ++j) {
    dcg += 1 / std::log2(j + 3.0);
    idcg += 1 / std::log2(j + 2.0);
  }
  EXPECT_NEAR(unseen_ndcg(logits, b.sparse, 100)[r].item<float>(), dcg / idcg, 1e-6);
  // At k = 1 every hit falls outside the cut-off.
  EXPECT_EQ(unseen_ndcg(logits, b.sparse, 1)[r].item<float>(), 0.0f);
}

TEST(RaCT, FeaturesAreSeenAndUnseenCountsAndTheRowsNegativeLogLikelihood) {
  Batch b(0.5, 0);
  torch::manual_seed(5);
  auto logits = torch::randn({b.rows, kItems});
  auto f = critic_features(logits, b.sparse);
  ASSERT_EQ(f.sizes(), (std::vector<std::int64_t>{b.rows, 3}));
  auto nll = -(b.x * torch::log_softmax(logits, 1)).sum(1);
  for (std::int64_t r = 0; r < b.rows; ++r) {
    EXPECT_EQ(f[r][0].item<float>(), static_cast<float>(row_items(b, r, true).size()));
    EXPECT_EQ(f[r][1].item<float>(), static_cast<float>(row_items(b, r, false).size()));
    EXPECT_NEAR(f[r][2].item<float>(), nll[r].item<float>(), 1e-4);
  }
}

TEST(RaCT, FrozenCriticPassesGradientOnlyToTheFeatures) {
  Critic critic;
  critic->set_moments(torch::zeros({3}), torch::ones({3}));
  auto f = torch::randn({4, 3}).requires_grad_(true);
  critic->forward(f, /*frozen=*/true).sum().backward();
  EXPECT_TRUE(f.grad().defined());
  for (const auto& p : critic->parameters()) EXPECT_FALSE(p.grad().defined());
  critic->forward(f.detach()).sum().backward();
  for (const auto& p : critic->parameters()) EXPECT_TRUE(p.grad().defined());
}

// ------------------------------------------------------------------------------------------
// Runs on the planted synthetic set.

class RaCTRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(scratch_dir("ract"));
    data_ = new std::string(testing::make_synthetic_split(*dir_, 1200, 300, 150, 7));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete data_;
  }
  void TearDown() override { clear_stop_request(); }
  static Config config(const std::string& name, int actor_epochs, int critic_epochs, int ac_epochs) {
    Config c = testing::small_config(*data_, scratch_dir("ract_" + name));
    c.model.type = "ract";
    c.section<RaCTConfig>().actor = "multvae";
    c.section<MultVAEConfig>().hidden_dim = 64;
    c.section<MultVAEConfig>().latent_dim = 16;
    c.section<MultVAEConfig>().anneal_steps = 200;
    c.section<RaCTConfig>().actor_epochs = actor_epochs;
    c.section<RaCTConfig>().critic_epochs = critic_epochs;
    c.section<RaCTConfig>().ac_epochs = ac_epochs;
    c.train.epochs = actor_epochs + critic_epochs + ac_epochs;
    c.train.batch_size = 64;
    return c;
  }
  static std::string* dir_;
  static std::string* data_;
};
std::string* RaCTRun::dir_ = nullptr;
std::string* RaCTRun::data_ = nullptr;

struct EpochRecord {
  std::map<std::string, std::map<std::string, double>> figures;  // phase -> name -> value
  double validation_ndcg = 0;
};

// Drives the trainer epoch by epoch, as run() does, keeping every pass's figures.
std::vector<EpochRecord> train_epochs(Trainer& t, int epochs) {
  std::vector<EpochRecord> out;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    EpochRecord rec;
    for (const auto& spec : t.schedule(epoch)) {
      PassStats st = t.train_pass(epoch, spec);
      t.end_pass(spec);
      for (const auto& [k, v] : st.figures) rec.figures[spec.phase][k] = v;
    }
    rec.validation_ndcg = t.evaluate(false).mean_ndcg100();
    out.push_back(rec);
  }
  return out;
}

TEST_F(RaCTRun, CriticLearnsOnAFixedActorAndFineTuningRaisesValidationNdcg) {
  auto comm = make_mpi_communicator();
  Config c = config("phases", 6, 6, 6);
  c.section<RaCTConfig>().critic_lr = 1e-3;
  c.section<RaCTConfig>().actor_lr = 1e-4;
  Trainer t(c, *comm);
  auto epochs = train_epochs(t, c.train.epochs);
  // Phase order and the measuring pass at the start of the critic epochs.
  EXPECT_EQ(t.schedule(5).front().phase, "joint");
  ASSERT_EQ(t.schedule(6).size(), 2u);
  EXPECT_EQ(t.schedule(6)[0].phase, "critic_features");
  EXPECT_TRUE(t.schedule(6)[0].groups.empty());
  EXPECT_EQ(t.schedule(7).size(), 1u);
  EXPECT_EQ(t.schedule(12).front().phase, "actor_critic");
  EXPECT_GT(epochs[6].figures["critic_features"]["mean_nll"], 0.0);

  // Critic pre-training leaves the actor alone and lowers the critic's error.
  const double start = epochs[6].validation_ndcg;
  for (int e = 7; e < 12; ++e) EXPECT_EQ(epochs[e].validation_ndcg, start) << "epoch " << e + 1;
  const double first_mse = epochs[6].figures["critic"]["critic_mse"];
  const double last_mse = epochs[11].figures["critic"]["critic_mse"];
  EXPECT_LT(last_mse, 0.9 * first_mse) << first_mse << " -> " << last_mse;
  EXPECT_GT(epochs[11].figures["critic"]["critic_corr"], 0.3);

  // The actor-critic epochs raise the actor's validation NDCG@100 above its starting value.
  double best_after = 0;
  for (int e = 12; e < 18; ++e) best_after = std::max(best_after, epochs[e].validation_ndcg);
  EXPECT_GT(best_after, start) << "actor before fine-tuning " << start;
  for (size_t e = 0; e < epochs.size(); ++e) {
    std::string line = "epoch " + std::to_string(e + 1) + " val " + std::to_string(epochs[e].validation_ndcg);
    for (const auto& [phase, f] : epochs[e].figures)
      for (const auto& [k, v] : f) line += " " + phase + "." + k + "=" + std::to_string(v);
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

// train.patience passes over the actor's and critic's own epochs (Note [Patience]): the critic's
// leave validation unchanged, so a patience counted there would end the run before any
// actor-critic epoch. An actor learning rate far too high makes the actor-critic epochs worse, so
// the run must stop inside them, K epochs after the later of its best epoch and the critic's last.
TEST_F(RaCTRun, PatienceCountsOnlyTheActorCriticEpochs) {
  auto comm = make_mpi_communicator();
  Config c = config("patience", 2, 4, 12);
  c.section<RaCTConfig>().actor_lr = 0.05;
  c.train.patience = 1;
  c.eval.popularity_baseline = false;
  RunResult r = Trainer(c, *comm).run();
  const std::string metrics = testing::read_text(c.output.dir + "/metrics.jsonl");
  const int ran = static_cast<int>(std::count(metrics.begin(), metrics.end(), '\n'));
  const int own_phases = 2 + 4;
  EXPECT_GT(ran, own_phases) << "patience stopped the run before its first actor-critic epoch";
  ASSERT_LT(ran, c.train.epochs) << "the run never stopped early: the test no longer exercises patience";
  EXPECT_EQ(ran, std::max(r.best_epoch, own_phases) + c.train.patience) << "best epoch " << r.best_epoch;
}

TEST_F(RaCTRun, ResumeInTheMiddleOfEveryPhaseEqualsTheUninterruptedRun) {
  auto comm = make_mpi_communicator();
  Config full = config("uninterrupted", 1, 2, 2);
  Trainer reference_trainer(full, *comm);
  RunResult reference = reference_trainer.run();

  // Stop after the first step of epoch e's first pass, then finish epoch e, for every phase:
  // 0 actor (maximum likelihood), 1 the measuring pass, 2 critic, 3 actor-critic.
  Config c = config("interrupted", 1, 2, 2);
  for (int e = 0; e < 4; ++e) {
    request_stop();
    Config stop_at = c;
    RunResult stopped = Trainer(stop_at, *comm).run(/*resume=*/e > 0);
    ASSERT_TRUE(stopped.stopped_on_signal) << "epoch " << e + 1;
    clear_stop_request();
    Config finish = c;
    finish.train.epochs = e + 1;
    Trainer(finish, *comm).run(/*resume=*/true);
  }
  Trainer last(c, *comm);
  RunResult resumed = last.run(/*resume=*/true);
  EXPECT_EQ(resumed.best_epoch, reference.best_epoch);
  EXPECT_EQ(resumed.test.ndcg100, reference.test.ndcg100);
  EXPECT_EQ(resumed.best_validation.ndcg100, reference.best_validation.ndcg100);
  EXPECT_EQ(last.global_step(), reference_trainer.global_step());
  auto& a = dynamic_cast<RaCTModel&>(last.model()).critic();
  auto& b = dynamic_cast<RaCTModel&>(reference_trainer.model()).critic();
  for (size_t i = 0; i < a->buffers().size(); ++i) EXPECT_TRUE(torch::equal(a->buffers()[i], b->buffers()[i]));
}

TEST_F(RaCTRun, StartsFromAnActorRunWithItsSectionAndRefusesAMismatchedOne) {
  auto comm = make_mpi_communicator();
  Config actor = config("actor", 0, 0, 0);
  actor.model.type = "multvae";
  actor.train.epochs = 3;
  actor.section<MultVAEConfig>().hidden_dim = 40;  // not the widths config() gives a RaCT run
  actor.section<MultVAEConfig>().latent_dim = 8;
  actor.section<MultVAEConfig>().beta_cap = 0.3;
  RunResult trained = Trainer(actor, *comm).run();
  const std::string actor_dir = actor.output.dir;

  // Note [The actor run's section]: the run's multvae section replaces the RaCT config's, saying so.
  Config c = config("from_run", 0, 1, 0);
  c.section<RaCTConfig>().actor_run = actor_dir;
  Config adopted = c;
  apply_model_defaults(adopted);
  EXPECT_EQ(adopted.section<MultVAEConfig>().hidden_dim, 40);
  EXPECT_EQ(adopted.section<MultVAEConfig>().latent_dim, 8);
  EXPECT_EQ(adopted.section<MultVAEConfig>().anneal_steps, 200);
  EXPECT_EQ(adopted.section<MultVAEConfig>().beta_cap, 0.3);
  ASSERT_EQ(adopted.notes.size(), 3u);
  EXPECT_NE(adopted.notes[0].find("multvae.hidden_dim is 40, the actor run's"), std::string::npos) << adopted.notes[0];
  EXPECT_NE(adopted.notes[0].find("not this config's 64"), std::string::npos) << adopted.notes[0];
  EXPECT_NE(adopted.notes[2].find("multvae.beta_cap is 0.3, "), std::string::npos) << adopted.notes[2];
  EXPECT_NE(adopted.notes[2].find("not this config's 0.2"), std::string::npos) << adopted.notes[2];
  EXPECT_EQ(c.section<MultVAEConfig>().hidden_dim, 64);  // the Trainer adopts into its own copy
  Trainer t(c, *comm);
  // The loaded actor scores as the best model of the actor run did.
  EXPECT_NEAR(t.evaluate(true).mean_ndcg100(), trained.test.mean_ndcg100(), 1e-6);

  // The InputError a trainer of `bad` throws ("" when it starts).
  auto refusal = [&](const Config& bad) -> std::string {
    try {
      Trainer t(bad, *comm);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  };
  // A copy of the run with `config` as its config.yaml ("": none), for actor_run.
  auto copy_of_run = [&](const std::string& name, const std::string& config) {
    const std::string dir = scratch_dir("ract_" + name);
    std::filesystem::create_directories(dir);
    for (const char* f : {"best_model.pt", "final.json"})
      std::filesystem::copy_file(actor_dir + "/" + f, dir + "/" + f, std::filesystem::copy_options::overwrite_existing);
    if (!config.empty()) std::ofstream(dir + "/config.yaml") << config;
    return dir;
  };
  // Without the run's config.yaml the section stays this config's, and the archive's shapes are checked.
  Config wider = c;
  wider.section<RaCTConfig>().actor_run = copy_of_run("bare_actor", "");
  wider.section<MultVAEConfig>().hidden_dim = 65;
  EXPECT_NE(refusal(wider).find("must match the run that trained it"), std::string::npos) << refusal(wider);
  Config unreadable = c;
  unreadable.section<RaCTConfig>().actor_run = copy_of_run("garbled_actor", "model: {type: multvae\nmultvae: [");
  EXPECT_NE(refusal(unreadable).find("ract.actor_run: cannot read"), std::string::npos) << refusal(unreadable);
  Config other = c;
  other.section<RaCTConfig>().actor = "recvae";
  EXPECT_NE(refusal(other).find("is a multvae run, but ract.actor is recvae"), std::string::npos) << refusal(other);
  Config missing = c;
  missing.section<RaCTConfig>().actor_run = actor_dir + "/nowhere";
  EXPECT_NE(refusal(missing).find("best_model.pt not found"), std::string::npos) << refusal(missing);
}

// Mean multinomial log-likelihood of `actor` over every training user, with the dropout masks
// and noise of (seed, epoch, pass): what a critic pass drawn from that stream reports as mll.
double replayed_mll(ActorModel& actor, const std::string& data, std::uint64_t seed, int epoch, int pass,
                    double dropout) {
  SplitFile f(data);
  const CsrMatrix train = f.read_rows(split::kTrain, 0, f.num_rows(split::kTrain));
  std::vector<std::int64_t> rows(static_cast<size_t>(train.rows));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  const BatchNoise noise{seed, epoch, pass, dropout, actor.noise_dim()};
  torch::NoGradGuard guard;
  SparseBatch b = assemble_batch(train, 0, rows, &noise, torch::kCPU);
  return multinomial_log_likelihood(actor.training_logits(b), b).to(torch::kFloat64).mean().item<double>();
}

TEST_F(RaCTRun, CriticEpochsDrawOtherMasksThanTheActorRunsTrainingEpochs) {
  // Note [Streams of a second training stage]: a RaCT run from ract.actor_run starts at epoch 0
  // with the actor run's seed; its critic must not be fed the masks the actor was trained on.
  auto comm = make_mpi_communicator();
  Config actor = config("stream_actor", 0, 0, 0);
  actor.model.type = "multvae";
  actor.train.epochs = 2;
  Trainer(actor, *comm).run();

  Config c = config("stream_critic", 0, 2, 1);
  c.section<RaCTConfig>().actor_run = actor.output.dir;
  Trainer t(c, *comm);
  for (int e = 0; e < c.train.epochs; ++e)
    for (const auto& spec : t.schedule(e)) EXPECT_NE(spec.noise_stream, 0u) << spec.phase << ", epoch " << e + 1;
  for (const auto& spec : Trainer(actor, *comm).schedule(0)) EXPECT_EQ(spec.noise_stream, 0u) << spec.phase;

  // Epoch 0's critic pass (pass 0, like the actor's training pass of epoch 0) reports the mll of
  // its own stream, not of the actor run's.
  const std::vector<PassSpec> epoch0 = t.schedule(0);
  ASSERT_EQ(epoch0.back().phase, "critic");
  t.train_pass(0, epoch0.front());  // the measuring pass sets the critic's feature moments
  t.end_pass(epoch0.front());
  ActorModel& fixed_actor = dynamic_cast<RaCTModel&>(t.model()).actor();
  PassStats critic = t.train_pass(0, epoch0.back());
  const PassSpec& pass = epoch0.back();
  const double own =
      replayed_mll(fixed_actor, *data_, stream_seed(c.train.seed, pass.noise_stream), 0, pass.pass, pass.dropout);
  const double replayed = replayed_mll(fixed_actor, *data_, c.train.seed, 0, pass.pass, pass.dropout);
  EXPECT_NEAR(critic.mll, own, 1e-4 * std::abs(own));
  EXPECT_GT(std::abs(critic.mll - replayed), 1e-3 * std::abs(replayed)) << "critic pass replays the actor's masks";
}

TEST_F(RaCTRun, ARecVAEActorKeepsItsOwnScheduleThenTheCriticTakesOver) {
  auto comm = make_mpi_communicator();
  Config c = config("recvae_actor", 8, 1, 2);
  c.section<RaCTConfig>().actor = "recvae";
  c.section<RaCTConfig>().actor_lr = 1e-4;
  Trainer t(c, *comm);
  std::vector<std::string> phases;
  for (const auto& spec : t.schedule(0)) phases.push_back(spec.phase);
  EXPECT_EQ(phases, (std::vector<std::string>{"encoder", "encoder", "encoder", "decoder"}));
  EXPECT_EQ(t.schedule(8).front().phase, "critic_features");
  EXPECT_EQ(t.schedule(10).front().phase, "actor_critic");
  RunResult r = t.run();
  EXPECT_GT(r.test.mean_ndcg100(), r.popularity_test.mean_ndcg100() + 0.05);
}

std::string config_error(const std::string& yaml) {
  try {
    parse_config(yaml, "t.yaml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(RaCTConfig, PhasesSetTheEpochsAndTheActorsSectionIsAllowed) {
  Config c = parse_config(
      "data: {path: x}\nmodel: {type: ract}\nract: {actor_epochs: 3, critic_epochs: 2, ac_epochs: 4}\n"
      "multvae: {hidden_dim: 32}",
      "t.yaml");
  EXPECT_EQ(c.train.epochs, 9);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);  // the actor's own default
  const std::string yaml = c.to_yaml();
  EXPECT_NE(yaml.find("multvae:"), std::string::npos);
  EXPECT_NE(yaml.find("ract:"), std::string::npos);
  EXPECT_EQ(parse_config(yaml, "back.yaml").train.epochs, 9);
  EXPECT_DOUBLE_EQ(
      parse_config("data: {path: x}\nmodel: {type: ract}\nract: {actor: recvae, actor_epochs: 1}", "t.yaml").train.lr,
      5e-4);

  EXPECT_NE(config_error("data: {path: x}\nmodel: {type: ract}").find("ract needs an actor"), std::string::npos);
  EXPECT_NE(config_error("data: {path: x}\nmodel: {type: ract}\nract: {actor_epochs: 2}\ntrain: {epochs: 5}")
                .find("'train.epochs' is 5 but ract.actor_epochs + ract.critic_epochs + ract.ac_epochs is 102"),
            std::string::npos);
  EXPECT_NE(config_error("data: {path: x}\nmodel: {type: ract}\nract: {actor_epochs: 2}\nrecvae: {gamma: 0.1}")
                .find("which reads the sections ract, multvae"),
            std::string::npos);
  EXPECT_NE(config_error("data: {path: x}\nmodel: {type: ract}\nract: {actor_epochs: 2, actor_run: r}")
                .find("either ract.actor_run or ract.actor_epochs"),
            std::string::npos);
  EXPECT_NE(config_error("data: {path: x}\nmodel: {type: ract}\nract: {actor: cdae, actor_epochs: 2}")
                .find("'cdae' is not one of multvae|recvae"),
            std::string::npos);
}

}  // namespace
}  // namespace recvae
