#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/train/checkpoint.h"
#include "recvae/dist/comm.h"
#include "recvae/util/error.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/trainer.h"
#include "recvae/models/recvae.h"

namespace fs = std::filesystem;

namespace recvae {
namespace {

using testing::decoder_pass;
using testing::encoder_pass;
using testing::joint_pass;
using testing::recvae_net;
using testing::run_command;
using testing::scratch_dir;

class CheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(scratch_dir("checkpoint"));
    data_ = new std::string(testing::make_synthetic_split(*dir_, 900, 250, 100, 5));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete data_;
  }
  void TearDown() override { clear_stop_request(); }

  static Config config(const std::string& name, int epochs) {
    Config c = testing::small_config(*data_, scratch_dir(name));
    c.train.epochs = epochs;
    c.train.batch_size = 64;
    return c;
  }
  static std::string* dir_;
  static std::string* data_;
};
std::string* CheckpointTest::dir_ = nullptr;
std::string* CheckpointTest::data_ = nullptr;

void expect_same_result(const RunResult& a, const RunResult& b) {
  EXPECT_EQ(a.best_epoch, b.best_epoch);
  EXPECT_EQ(a.test.ndcg100, b.test.ndcg100);
  EXPECT_EQ(a.test.recall20, b.test.recall20);
  EXPECT_EQ(a.test.recall50, b.test.recall50);
  EXPECT_EQ(a.best_validation.ndcg100, b.best_validation.ndcg100);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(CheckpointTest, ResumedRunEqualsUninterruptedRun) {
  auto comm = make_mpi_communicator();
  Config full = config("full", 3);
  RunResult uninterrupted = Trainer(full, *comm).run();

  Config part = config("part", 1);
  Trainer(part, *comm).run();
  EXPECT_FALSE(CheckpointStore(part.output.dir).latest().empty());
  part.train.epochs = 3;
  Trainer resumed(part, *comm);
  RunResult r = resumed.run(/*resume=*/true);
  expect_same_result(r, uninterrupted);

  // The resumed run's log holds each epoch once.
  std::ifstream metrics(part.output.dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);)
    EXPECT_NE(line.find("{\"epoch\": " + std::to_string(++lines)), std::string::npos);
  EXPECT_EQ(lines, 3);
}

TEST_F(CheckpointTest, StopRequestCheckpointsMidPassAndResumesExactly) {
  auto comm = make_mpi_communicator();
  RunResult uninterrupted = Trainer(config("stop_full", 2), *comm).run();

  Config c = config("stop", 2);
  request_stop();  // as SIGTERM would: the run stops after its first step
  RunResult stopped = Trainer(c, *comm).run();
  EXPECT_TRUE(stopped.stopped_on_signal);
  const std::string latest = CheckpointStore(c.output.dir).latest();
  EXPECT_NE(latest.find("epoch-0000-pass-00-step-000001"), std::string::npos) << latest;
  EXPECT_FALSE(testing::file_exists(c.output.dir + "/final.json"));

  clear_stop_request();
  RunResult resumed = Trainer(c, *comm).run(true);
  EXPECT_FALSE(resumed.stopped_on_signal);
  expect_same_result(resumed, uninterrupted);
}

TEST_F(CheckpointTest, ResumeRefusesAnotherModelShapeOrDataSet) {
  auto comm = make_mpi_communicator();
  Config c = config("refuse", 1);
  Trainer(c, *comm).run();
  const std::string metrics_before = slurp(c.output.dir + "/metrics.jsonl");

  Config wider = c;
  wider.section<RecVAEConfig>().hidden_dim = 96;
  try {
    Trainer(wider, *comm).run(true);
    FAIL() << "resumed with another hidden_dim";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("recvae.hidden_dim=64, this run has 96"), std::string::npos) << e.what();
  }

  Config other_data = c;
  other_data.data.path = testing::make_synthetic_split(scratch_dir("other_data"), 900, 250, 100, 6);
  try {
    Trainer(other_data, *comm).run(true);
    FAIL() << "resumed on another data set";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("another data set"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(c.output.dir + "/metrics.jsonl"), metrics_before);  // nothing overwritten

  Config fresh = config("no_checkpoint", 1);
  EXPECT_THROW(Trainer(fresh, *comm).run(true), InputError);
}

TEST_F(CheckpointTest, StoreKeepsTheNewestAndCommitsThroughLatest) {
  const std::string dir = scratch_dir("store");
  CheckpointStore store(dir, 2);
  EXPECT_EQ(store.latest(), "");
  for (int i = 1; i <= 3; ++i)
    store.save("c" + std::to_string(i), [&](torch::serialize::OutputArchive& a) {
      a.write("value", c10::IValue(static_cast<std::int64_t>(i)));
    });
  EXPECT_NE(store.latest().find("c3.pt"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/checkpoints/c1.pt"));
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/c2.pt"));
  std::int64_t v = 0;
  CheckpointStore::load(store.latest(), torch::kCPU,
                        [&](torch::serialize::InputArchive& a) { v = read_int(a, "value"); });
  EXPECT_EQ(v, 3);
}

std::string dist_command(const std::string& config_path, const std::string& extra) {
  return std::string(RECVAE_DIST_BIN) + " " + config_path +
         " --set recvae.hidden_dim=64 --set recvae.latent_dim=16 --set train.threads=1 --set train.batch_size=64"
         " --set output.progress_seconds=0 " +
         extra;
}

TEST_F(CheckpointTest, KillDuringCheckpointWriteLeavesThePreviousOneLoadable) {
  const std::string dir = scratch_dir("kill9");
  testing::write_text(dir + "/c.yaml", "data: {path: " + *data_ + "}\noutput: {dir: " + dir + "/run}\n");
  auto r = run_command("RECVAE_FAULT_KILL_BEFORE_COMMIT=epoch-0002-pass-00-step-000000 " +
                       dist_command(dir + "/c.yaml", "--set train.epochs=3"));
  EXPECT_EQ(r.exit_code, 128 + 9) << r.output;  // killed by SIGKILL while writing epoch 2's checkpoint
  CheckpointStore store(dir + "/run");
  EXPECT_NE(store.latest().find("epoch-0001-pass-00-step-000000.pt"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoints/epoch-0002-pass-00-step-000000.pt.tmp"));  // the torn write
  r = run_command(dist_command(dir + "/c.yaml", "--set train.epochs=3 --resume"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos);
  EXPECT_NE(store.latest().find("epoch-0003"), std::string::npos);
}

TEST_F(CheckpointTest, SigtermWritesACheckpointAndExitsWithStatus3) {
  const std::string dir = scratch_dir("sigterm");
  testing::write_text(dir + "/c.yaml", "data: {path: " + *data_ + "}\noutput: {dir: " + dir + "/run}\n");
  // Start a long run, wait for its first epoch record, then send SIGTERM.
  const std::string script = dist_command(dir + "/c.yaml", "--set train.epochs=1000") + " > " + dir +
                             "/log 2>&1 & pid=$!; " + "for i in $(seq 600); do [ -s " + dir +
                             "/run/metrics.jsonl ] && break; sleep 0.1; done; " +
                             "kill -TERM $pid; wait $pid; echo \"exit=$?\"";
  auto r = run_command("bash -c '" + script + "'");
  EXPECT_NE(r.output.find("exit=3"), std::string::npos) << r.output << slurp(dir + "/log");
  EXPECT_NE(slurp(dir + "/log").find("stop requested: checkpoint written"), std::string::npos);
  EXPECT_FALSE(CheckpointStore(dir + "/run").latest().empty());
  r = run_command(dist_command(dir + "/c.yaml", "--set train.epochs=2 --resume"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(CheckpointTest, OneFailingRankEndsTheWholeJob) {
  const std::string dir = scratch_dir("fault");
  testing::write_text(dir + "/c.yaml", "data: {path: " + *data_ + "}\noutput: {dir: " + dir + "/run}\n");
  // bucket_mb > 0: the other rank's communication thread sits in a collective the failed rank
  // never joins (Note [Overlapped gradient sync]); the job must end all the same.
  for (const std::string bucket_mb : {"0", "0.001"}) {
    const auto t0 = std::chrono::steady_clock::now();
    // A fresh environment for mpirun: this process may itself be an MPI singleton whose OMPI_/PMIX_
    // variables would confuse a nested launch.
    auto r = run_command(
        "bash -c 'unset $(compgen -e | grep -E \"^(OMPI|PMIX|OPAL)_\"); "
        "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 RECVAE_FAULT_RANK=1 RECVAE_FAULT_STEP=2 "
        "timeout 120 mpirun -np 2 --oversubscribe -x RECVAE_FAULT_RANK -x RECVAE_FAULT_STEP " +
        dist_command(dir + "/c.yaml", "--set train.epochs=50 --set dist.bucket_mb=" + bucket_mb) + "'");
    EXPECT_NE(r.exit_code, 0) << bucket_mb << r.output;
    EXPECT_NE(r.exit_code, 124) << "the job hung until the timeout (bucket_mb " << bucket_mb << ")";
    EXPECT_NE(r.output.find("rank 1: injected fault"), std::string::npos) << r.output;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 100.0) << bucket_mb;
  }
}

}  // namespace
}  // namespace recvae
