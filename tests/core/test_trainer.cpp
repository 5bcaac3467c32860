#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/models/registry.h"
#include "recvae/dist/comm.h"
#include "recvae/train/trainer.h"
#include "recvae/util/cpu_affinity.h"
#include "recvae/models/recvae.h"

namespace recvae {
namespace {

using testing::decoder_pass;
using testing::encoder_pass;
using testing::joint_pass;
using testing::make_synthetic_split;
using testing::recvae_net;
using testing::scratch_dir;
using testing::small_config;

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (auto& p : ps) out.push_back(p.detach().clone());
  return out;
}

bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

bool none_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (torch::equal(a[i], b[i])) return false;
  return true;
}

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(scratch_dir("trainer"));
    data_ = new std::string(make_synthetic_split(*dir_));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete data_;
  }
  static std::string* dir_;
  static std::string* data_;
};
std::string* TrainerTest::dir_ = nullptr;
std::string* TrainerTest::data_ = nullptr;

// A rank bound to fewer CPUs than train.threads is told so (mpirun binds ranks to one core by
// default); one within its mask is not.
TEST_F(TrainerTest, MoreThreadsThanTheAffinityMaskAllowsGetAWarning) {
  cpu_set_t saved, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &saved)) {
      CPU_SET(c, &one);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(usable_cpus(), 1);
  auto comm = make_mpi_communicator();
  Config c = small_config(*data_, scratch_dir("affinity"));
  c.train.threads = 2;
  ::testing::internal::CaptureStderr();
  { Trainer t(c, *comm); }
  const std::string two = ::testing::internal::GetCapturedStderr();
  c.train.threads = 1;
  ::testing::internal::CaptureStderr();
  { Trainer t(c, *comm); }
  const std::string one_thread = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  EXPECT_NE(two.find("train.threads 2, but rank 0 may run on 1 CPU(s) only"), std::string::npos) << two;
  EXPECT_NE(two.find("--bind-to none"), std::string::npos) << two;
  EXPECT_EQ(one_thread.find("warning"), std::string::npos) << one_thread;
  torch::set_num_threads(1);
}

// Threads spinning on every CPU of the mask make each of them busy (Note [Busy cores]).
struct Spinners {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  explicit Spinners(int n) {
    for (int i = 0; i < n; ++i)
      threads.emplace_back([this] {
        volatile unsigned long x = 0;
        while (!stop.load(std::memory_order_relaxed)) x = x + 1;
      });
  }
  ~Spinners() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

TEST_F(TrainerTest, BusyCpusCountsCpusThatOthersKeepBusy) {
  Spinners load(usable_cpus());
  EXPECT_GE(busy_cpus(0.3), 1);
}

// With train.threads automatic, a rank whose CPUs are busy takes fewer threads and says so; an
// explicit train.threads is kept.
TEST_F(TrainerTest, AutomaticThreadsAvoidBusyCores) {
  if (usable_cpus() < 2 || std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs";
  auto comm = make_mpi_communicator();
  Config c = small_config(*data_, scratch_dir("busy"));
  c.train.threads = 0;
  std::string automatic, explicit_two;
  {
    Spinners load(usable_cpus());
    ::testing::internal::CaptureStderr();
    { Trainer t(c, *comm); }
    automatic = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(torch::get_num_threads(), 1);
    c.train.threads = 2;
    ::testing::internal::CaptureStderr();
    { Trainer t(c, *comm); }
    explicit_two = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(torch::get_num_threads(), 2);
  }
  EXPECT_NE(automatic.find("busy with other processes: 1 thread(s) per rank"), std::string::npos) << automatic;
  EXPECT_EQ(explicit_two.find("busy with other processes"), std::string::npos) << explicit_two;
  torch::set_num_threads(1);
}

TEST_F(TrainerTest, RecVAEScheduleAlternatesAndRefreshesOnceAfterTheEncoderPasses) {
  auto comm = make_mpi_communicator();
  Config c = small_config(*data_, scratch_dir("schedule"));
  Trainer t(c, *comm);
  auto s = t.schedule();
  ASSERT_EQ(s.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s[i].phase, "encoder");
    EXPECT_EQ(s[i].groups, std::vector<int>{0});
    EXPECT_DOUBLE_EQ(s[i].dropout, 0.5);  // dropout only in encoder passes
    EXPECT_EQ(s[i].pass, i);
  }
  EXPECT_EQ(s[3].phase, "decoder");
  EXPECT_EQ(s[3].groups, std::vector<int>{1});
  EXPECT_DOUBLE_EQ(s[3].dropout, 0.0);
  // encoder_old moves only at the end of the last encoder pass.
  auto& m = recvae_net(t);
  for (int i = 0; i < 4; ++i) {
    auto old = snapshot(m->encoder_old->parameters());
    t.end_pass(s[i]);
    EXPECT_EQ(all_equal(old, m->encoder_old->parameters()), i != 2) << "pass " << i;
  }
  c.section<RecVAEConfig>().alternating = false;
  Trainer joint(c, *comm);
  s = joint.schedule();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].phase, "joint");
  EXPECT_EQ(s[0].groups, (std::vector<int>{0, 1}));
  EXPECT_DOUBLE_EQ(s[0].dropout, 0.5);
  auto old = snapshot(recvae_net(joint)->encoder_old->parameters());
  joint.end_pass(s[0]);  // the joint variant never refreshes encoder_old
  EXPECT_TRUE(all_equal(old, recvae_net(joint)->encoder_old->parameters()));
}

TEST_F(TrainerTest, PassesStepOnlyTheirGroupAndEncoderOldOnlyMovesOnRefresh) {
  auto comm = make_mpi_communicator();
  Trainer t(small_config(*data_, scratch_dir("groups")), *comm);
  auto& m = recvae_net(t);
  auto enc0 = snapshot(m->encoder_parameters()), dec0 = snapshot(m->decoder_parameters());
  auto old0 = snapshot(m->encoder_old->parameters());

  PassStats st = t.train_pass(0, encoder_pass(0, 0.5));
  EXPECT_GT(st.steps, 0);
  EXPECT_TRUE(none_equal(enc0, m->encoder_parameters()));
  EXPECT_TRUE(all_equal(dec0, m->decoder_parameters()));
  EXPECT_TRUE(all_equal(old0, m->encoder_old->parameters()));
  EXPECT_EQ(
      st.allreduce_bytes, 4 * [&] {
        std::int64_t n = 0;
        for (auto& p : m->encoder_parameters()) n += p.numel();
        return n;
      }());

  t.end_pass(encoder_pass(2));
  EXPECT_TRUE(all_equal(snapshot(m->encoder_parameters()), m->encoder_old->parameters()));

  auto enc1 = snapshot(m->encoder_parameters());
  auto old1 = snapshot(m->encoder_old->parameters());
  t.train_pass(0, decoder_pass(3));
  EXPECT_TRUE(all_equal(enc1, m->encoder_parameters()));
  EXPECT_TRUE(none_equal(dec0, m->decoder_parameters()));
  EXPECT_TRUE(all_equal(old1, m->encoder_old->parameters()));
  for (auto& p : m->encoder_old->parameters()) EXPECT_FALSE(p.requires_grad());

  auto enc2 = snapshot(m->encoder_parameters()), dec2 = snapshot(m->decoder_parameters());
  t.train_pass(1, joint_pass(0, 0.5));
  EXPECT_TRUE(none_equal(enc2, m->encoder_parameters()));
  EXPECT_TRUE(none_equal(dec2, m->decoder_parameters()));
}

TEST_F(TrainerTest, SameSeedSameModelOtherSeedOtherModel) {
  auto comm = make_mpi_communicator();
  Config c = small_config(*data_, scratch_dir("seed"));
  Trainer a(c, *comm), b(c, *comm);
  a.train_pass(0, encoder_pass(0, 0.5));
  b.train_pass(0, encoder_pass(0, 0.5));
  EXPECT_TRUE(all_equal(snapshot(a.model().parameters()), b.model().parameters()));
  c.train.seed = 99;
  Trainer other(c, *comm);
  other.train_pass(0, encoder_pass(0, 0.5));
  EXPECT_FALSE(all_equal(snapshot(a.model().parameters()), other.model().parameters()));
}

TEST_F(TrainerTest, NonFiniteLossStopsTrainingNamingEpochAndStep) {
  auto comm = make_mpi_communicator();
  Trainer t(small_config(*data_, scratch_dir("nan")), *comm);
  {
    torch::NoGradGuard g;
    recvae_net(t)->decoder->bias.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  try {
    t.train_pass(4, encoder_pass(1, 0.5));
    FAIL() << "expected a non-finite loss error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite loss"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("epoch 5, pass 2, step 1"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, ShortRunBeatsPopularityAndWritesTheRunDirectory) {
  auto comm = make_mpi_communicator();
  const std::string dir = scratch_dir("quality");
  Config c = small_config(*data_, dir);
  c.section<RecVAEConfig>().hidden_dim = 128;
  c.section<RecVAEConfig>().latent_dim = 32;
  c.train.epochs = 6;
  c.train.lr = 2e-3;
  Trainer t(c, *comm);
  RunResult r = t.run();
  EXPECT_GT(r.test.users, 100);
  EXPECT_GT(r.best_epoch, 0);
  // Planted taste groups: a trained RecVAE must clearly beat the popularity ranking.
  EXPECT_GT(r.test.mean_ndcg100(), r.popularity_test.mean_ndcg100() + 0.05)
      << "recvae " << r.test.mean_ndcg100() << " popularity " << r.popularity_test.mean_ndcg100();

  std::ifstream metrics(c.output.dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) {
    ++lines;
    EXPECT_NE(line.find("\"validation\": {\"ndcg@100\""), std::string::npos);
    EXPECT_NE(line.find("\"train_users_per_second\""), std::string::npos);
  }
  EXPECT_EQ(lines, 6);
  const std::string fin = testing::read_text(c.output.dir + "/final.json");
  for (const char* key : {"\"ndcg@100\"", "\"recall@20\"", "\"recall@50\"", "\"popularity\"", "\"best_epoch\""})
    EXPECT_NE(fin.find(key), std::string::npos) << key;
  EXPECT_TRUE(testing::file_exists(c.output.dir + "/config.yaml"));
  EXPECT_TRUE(testing::file_exists(c.output.dir + "/best_model.pt"));
  EXPECT_NO_THROW(load_config(c.output.dir + "/config.yaml"));
}

// train.patience (Note [Patience]): a run stops once validation has not improved for K epochs,
// tests its best epoch, and a resume with more epochs stops again at once.
TEST_F(TrainerTest, PatienceStopsAfterKEpochsWithoutImprovement) {
  auto comm = make_mpi_communicator();
  Config c = small_config(*data_, scratch_dir("patience"));
  c.train.epochs = 14;
  c.train.lr = 3e-2;  // overfits the small set within a few epochs
  c.train.patience = 2;
  c.eval.popularity_baseline = false;
  auto epoch_lines = [&] {  // metrics.jsonl has one line per epoch
    const std::string text = testing::read_text(c.output.dir + "/metrics.jsonl");
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  };
  auto final_json = [&] { return testing::read_text(c.output.dir + "/final.json"); };
  RunResult r = Trainer(c, *comm).run();
  const int ran = epoch_lines();
  ASSERT_LT(ran, c.train.epochs) << "the run never stopped early: the test no longer exercises patience";
  EXPECT_EQ(ran, r.best_epoch + c.train.patience);
  EXPECT_NE(final_json().find("\"stopped_early\": true"), std::string::npos) << final_json();
  EXPECT_NE(final_json().find("\"epochs_run\": " + std::to_string(ran)), std::string::npos) << final_json();
  // Promoted to more epochs (a sweep's next rung): nothing improved since, so it stops at once.
  c.train.epochs = 30;
  RunResult again = Trainer(c, *comm).run(/*resume=*/true);
  EXPECT_EQ(epoch_lines(), ran);
  EXPECT_EQ(again.best_epoch, r.best_epoch);
  EXPECT_DOUBLE_EQ(again.test.ndcg100, r.test.ndcg100);
  // Without patience the same run goes on.
  c.train.patience = 0;
  c.train.epochs = ran + 1;
  Trainer(c, *comm).run(/*resume=*/true);
  EXPECT_EQ(epoch_lines(), ran + 1);
  EXPECT_NE(final_json().find("\"stopped_early\": false"), std::string::npos) << final_json();
}

TEST_F(TrainerTest, CliReportsBadInputWithExitCode2) {
  const std::string dir = scratch_dir("cli");
  testing::write_text(dir + "/bad_key.yaml", "data: {path: " + *data_ + "}\ntrain: {learning_rate: 1}\n");
  testing::write_text(dir + "/missing.yaml", "data: {path: " + dir + "/nope.h5}\noutput: {dir: " + dir + "/run}\n");
  // Runs recvae_dist with `args`; expects exit code `code` and `needle` in the output.
  auto expect_cli = [&](const std::string& args, int code, const std::string& needle) {
    const auto r = testing::run_command(std::string(RECVAE_DIST_BIN) + " " + args);
    EXPECT_EQ(r.exit_code, code) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
  };
  expect_cli(dir + "/bad_key.yaml", 2, "unknown config key 'train.learning_rate'");
  expect_cli(dir + "/missing.yaml", 2, "nope.h5");
  expect_cli(dir + "/missing.yaml --set train.dropout=1.5", 2, "'train.dropout'");
  expect_cli("--help", 0, "usage: recvae_dist");
  // --check validates without reading the data (missing.yaml's file does not exist).
  expect_cli(dir + "/missing.yaml --check --set model.type=wmf", 0, "config valid (model.type wmf)");
  expect_cli(dir + "/missing.yaml --check --set wmf.dimm=3", 2, "wmf.dimm");
  expect_cli(dir + "/bad_key.yaml --check", 2, "train.learning_rate");
  // --check-sets: a line per set of tab-separated overrides, after the --set ones; a verdict per line.
  testing::write_text(dir + "/sets.txt", "train.epochs=3\ttrain.lr=0.01\nwmf.dimm=3\n\ntrain.dropout=1.5\n");
  const auto sets = testing::run_command(std::string(RECVAE_DIST_BIN) + " " + dir +
                                         "/missing.yaml --set model.type=wmf" + " --check-sets " + dir + "/sets.txt");
  EXPECT_EQ(sets.exit_code, 2) << sets.output;
  for (const char* verdict : {"set 1: valid\n", "set 2: ", "set 3: valid\n", "set 4: "})
    EXPECT_NE(sets.output.find(verdict), std::string::npos) << verdict << "\n" << sets.output;
  EXPECT_NE(sets.output.find("'wmf.dimm'"), std::string::npos) << sets.output;
  EXPECT_NE(sets.output.find("'train.dropout'"), std::string::npos) << sets.output;
  EXPECT_EQ(sets.output.find("set 5"), std::string::npos) << sets.output;
  testing::write_text(dir + "/good_sets.txt", "train.epochs=3\nwmf.dim=8\ttrain.lr=0.01\n");
  expect_cli(dir + "/missing.yaml --set model.type=wmf --check-sets " + dir + "/good_sets.txt", 0, "set 2: valid");
  expect_cli(dir + "/missing.yaml --check-sets " + dir + "/none.txt", 2, "none.txt");
}

}  // namespace
}  // namespace recvae
