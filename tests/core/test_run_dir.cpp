// RunDir: the one place that names a run directory's files, and the model type a finished run
// records (RaCT's ract.actor_run and recvae_recommend read runs through it).
#include <gtest/gtest.h>

#include <string>

#include "../common/test_util.h"
#include "recvae/util/run_dir.h"

namespace recvae {
namespace {

TEST(RunDir, NamesTheFilesOfARun) {
  const RunDir run("runs/x");
  EXPECT_EQ(run.config(), "runs/x/config.yaml");
  EXPECT_EQ(run.metrics(), "runs/x/metrics.jsonl");
  EXPECT_EQ(run.final_json(), "runs/x/final.json");
  EXPECT_EQ(run.best_model(), "runs/x/best_model.pt");
  EXPECT_EQ(run.model_export(), "runs/x/model.h5");
  EXPECT_EQ(run.checkpoints(), "runs/x/checkpoints");
  EXPECT_EQ(run.outputs().size(), 7u);  // what a fresh run archives
}

TEST(RunDir, ReadsTheTopLevelModelOfFinalJson) {
  const std::string dir = testing::scratch_dir("run_dir");
  const RunDir run(dir);
  EXPECT_EQ(run.model_type(), "");  // no final.json yet
  // A nested "model" key and a string value "model" are not the top-level key.
  testing::write_text(run.final_json(),
                      "{\"validation\": {\"model\": \"nested\"}, \"note\": \"model\", \"model\": \"ra\\\"ct\", "
                      "\"best_epoch\": 3}\n");
  EXPECT_EQ(run.model_type(), "ra\"ct");
  testing::write_text(run.final_json(), "{\"best_epoch\": 3, \"items\": [\"model\", {\"model\": \"x\"}]}\n");
  EXPECT_EQ(run.model_type(), "");
  EXPECT_EQ(json_top_level_string("{\"model\": 5}", "model"), "");  // not a string
}

}  // namespace
}  // namespace recvae
