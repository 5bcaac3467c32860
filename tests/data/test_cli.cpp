// recvae_prep and recvae_synth through their command lines.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "recvae/data/h5_dataset.h"
#include "../common/test_util.h"

namespace fs = std::filesystem;
using namespace recvae;
using namespace recvae::testing;

namespace {

const std::string kPrep = RECVAE_PREP_BIN;
const std::string kSynth = RECVAE_SYNTH_BIN;

/// Runs a command keeping only its stderr.
CommandResult run_stderr(const std::string& cmd) { return run_command("{ " + cmd + " 2>&1 >/dev/null; }"); }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

/// A movielens ratings.csv: `users` users with 6..15 ratings each (ratings 4 and 5, so all pass 3.5).
std::string ml_csv(int users) {
  std::string s = "userId,movieId,rating,timestamp\n";
  for (int u = 1; u <= users; ++u)
    for (int k = 0; k < 6 + u % 10; ++k)
      s += std::to_string(u) + "," + std::to_string((u * 7 + k * 13) % 97) + "," + (k % 2 ? "4.0" : "5") + ",0\n";
  return s;
}

void expect_input_error(const std::string& cmd, const std::string& must_contain) {
  CommandResult r = run_stderr(cmd);
  EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << r.output;
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find(must_contain), std::string::npos) << r.output;
}

}  // namespace

TEST(Cli, Help) {
  CommandResult r = run_command(kPrep + " --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--heldout-users"), std::string::npos);
  EXPECT_NE(r.output.find("recbole"), std::string::npos);
  r = run_command(kSynth + " --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--preset"), std::string::npos);
}

TEST(Cli, PrepMovielensEndToEnd) {
  const std::string dir = scratch_dir("cli_ml");
  write_text(dir + "/ml/ratings.csv", ml_csv(200));
  CommandResult r = run_command(kPrep + " --format movielens --input " + dir + "/ml --output " + dir +
                                "/out.h5 --heldout-users 20 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("users >= 5 items"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("validation/holdout"), std::string::npos) << r.output;
  SplitFile f(dir + "/out.h5");
  EXPECT_EQ(f.num_rows(split::kTrain), 160);
  EXPECT_EQ(f.num_rows(split::kTestFoldIn), 20);
  ProtocolInfo p = f.read_protocol();
  EXPECT_EQ(p.source_format, "movielens");
  EXPECT_DOUBLE_EQ(p.threshold, 3.5);
  EXPECT_EQ(p.seed, 3u);
  EXPECT_EQ(p.heldout_users, 20);
  // Same seed, same bytes of the matrices.
  ASSERT_EQ(run_command(kPrep + " --quiet --format movielens --input " + dir + "/ml/ratings.csv --output " + dir +
                        "/again.h5 --heldout-users 20 --seed 3")
                .exit_code,
            0);
  SplitFile g(dir + "/again.h5");
  EXPECT_EQ(g.read_rows(split::kTrain, 0, 160).indices, f.read_rows(split::kTrain, 0, 160).indices);
  EXPECT_EQ(g.read_item_ids(), f.read_item_ids());
}

TEST(Cli, SynthCsvThroughPrep) {
  const std::string dir = scratch_dir("cli_synth");
  CommandResult r =
      run_command(kSynth + " --quiet --preset tiny --users 800 --items 300 --seed 4 --output " + dir + "/raw.csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kPrep + " --quiet --format csv --input " + dir + "/raw.csv --output " + dir +
                  "/a.h5 --heldout-users 80");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SplitFile f(dir + "/a.h5");
  EXPECT_EQ(f.num_rows(split::kTrain), 640);
  EXPECT_EQ(f.num_items(), 300);
  r = run_command(kSynth + " --quiet --preset tiny --output " + dir + "/t.h5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SplitFile t(dir + "/t.h5");
  EXPECT_EQ(t.num_rows(split::kTrain), 2400);
  EXPECT_EQ(t.num_rows(split::kValidationHoldout), 300);
  EXPECT_EQ(t.num_items(), 1000);
  // Deterministic: the same command gives the same data.
  ASSERT_EQ(run_command(kSynth + " --quiet --preset tiny --output " + dir + "/t2.h5").exit_code, 0);
  SplitFile t2(dir + "/t2.h5");
  EXPECT_EQ(t2.read_rows(split::kTestHoldout, 0, 300).indices, t.read_rows(split::kTestHoldout, 0, 300).indices);
  expect_input_error(kSynth + " --preset nope --output " + dir + "/x.h5", "unknown preset");
  expect_input_error(kSynth + " --preset tiny --output " + dir + "/x.txt", "x.txt");
}

TEST(Cli, PrepLiang) {
  const std::string dir = scratch_dir("cli_liang");
  write_text(dir + "/in/unique_sid.txt", "10\n20\n30\n");
  write_text(dir + "/in/train.csv", "uid,sid\n0,0\n0,1\n1,2\n");
  write_text(dir + "/in/validation_tr.csv", "uid,sid\n2,0\n");
  write_text(dir + "/in/validation_te.csv", "uid,sid\n2,1\n");
  write_text(dir + "/in/test_tr.csv", "uid,sid\n3,2\n4,1\n");
  write_text(dir + "/in/test_te.csv", "uid,sid\n3,0\n");
  CommandResult r = run_command(kPrep + " --quiet --format liang --input " + dir + "/in --output " + dir + "/l.h5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SplitFile f(dir + "/l.h5");
  EXPECT_EQ(f.num_rows(split::kTrain), 2);
  EXPECT_EQ(f.num_rows(split::kTestHoldout), 2);
  EXPECT_EQ(f.read_rows(split::kTestHoldout, 0, 2).indptr, (std::vector<std::int64_t>{0, 1, 1}));
  EXPECT_EQ(f.read_item_ids(), (std::vector<std::string>{"10", "20", "30"}));
}

TEST(Cli, BadInputExitsWithTwo) {
  const std::string dir = scratch_dir("cli_bad");
  const std::string out = " --output " + dir + "/out.h5";
  expect_input_error(kPrep + " --format movielens --input " + dir + "/nope.csv" + out, dir + "/nope.csv: no such file");
  write_text(dir + "/cols.csv", "user,movie,stars\n1,2,3\n");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/cols.csv" + out, dir + "/cols.csv:1:");
  write_text(dir + "/short.csv", "userId,movieId,rating,timestamp\n1,2,4,0\n1,3\n");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/short.csv" + out, dir + "/short.csv:3:");
  write_text(dir + "/nan.csv", "userId,movieId,rating,timestamp\n1,2,4,0\n1,3,good,0\n");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/nan.csv" + out,
                     dir + "/nan.csv:3: non-numeric rating");
  write_text(dir + "/low.csv", "userId,movieId,rating,timestamp\n1,2,1,0\n1,3,2,0\n2,2,3,0\n");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/low.csv" + out, dir + "/low.csv");
  write_text(dir + "/few/ratings.csv", ml_csv(30));
  expect_input_error(kPrep + " --quiet --format movielens --input " + dir + "/few --heldout-users 15" + out,
                     "heldout-users");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/few" + out, "heldout-users");  // default 10000
  expect_input_error(kPrep + " --format parquet --input " + dir + "/few" + out, "unknown format");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/few", "--output");
  expect_input_error(kPrep + " --format movielens --bogus 1", "unknown option");
  expect_input_error(kPrep + " --format movielens --input " + dir + "/few --heldout-users x" + out, "not an integer");
  EXPECT_FALSE(file_exists(dir + "/out.h5"));
  // No temporary files left behind by the failures.
  for (auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Cli, FailedRunKeepsExistingOutput) {
  const std::string dir = scratch_dir("cli_keep");
  write_text(dir + "/ratings.csv", ml_csv(100));
  const std::string out = dir + "/out.h5";
  ASSERT_EQ(run_command(kPrep + " --quiet --format movielens --input " + dir + " --heldout-users 10 --output " + out)
                .exit_code,
            0);
  const auto before = fs::file_size(out);
  CommandResult r =
      run_stderr(kPrep + " --quiet --format movielens --input " + dir + " --heldout-users 60 --output " + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(fs::file_size(out), before);
  SplitFile f(out);
  EXPECT_EQ(f.num_rows(split::kTestFoldIn), 10);
}

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// A RecBole .inter file: `users` users with 6..15 interactions, ratings alternating 5 and 2.
std::string recbole_inter(int users, bool rating) {
  std::string s =
      rating ? "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" : "user_id:token\titem_id:token\n";
  for (int u = 1; u <= users; ++u)
    for (int k = 0; k < 6 + u % 10; ++k) {
      s += "u" + std::to_string(u) + "\ti" + std::to_string((u * 7 + k * 13) % 97);
      s += rating ? std::string(k % 2 ? "\t2" : "\t5") + "\t0\n" : "\n";
    }
  return s;
}

}  // namespace

TEST(Cli, PrepTruncatedGzipExitsTwoAndWritesNothing) {
  if (run_command("command -v gzip").exit_code != 0) GTEST_SKIP() << "no gzip command";
  const std::string dir = scratch_dir("cli_gz");
  std::string csv = "user,item\n";
  for (int u = 0; u < 400; ++u)
    for (int k = 0; k < 8; ++k)
      csv += "user" + std::to_string(u) + ",item" + std::to_string((u * 5 + k * 11) % 150) + "\n";
  write_text(dir + "/in.csv", csv);
  ASSERT_EQ(run_command("gzip -k " + dir + "/in.csv").exit_code, 0);
  // The whole file works and gives the same split as the plain one.
  ASSERT_EQ(
      run_command(kPrep + " --quiet --format csv --input " + dir + "/in.csv.gz --output " + dir + "/gz.h5").exit_code,
      0);
  ASSERT_EQ(
      run_command(kPrep + " --quiet --format csv --input " + dir + "/in.csv --output " + dir + "/plain.h5").exit_code,
      0);
  SplitFile g(dir + "/gz.h5"), p(dir + "/plain.h5");
  EXPECT_EQ(g.read_item_ids(), p.read_item_ids());
  EXPECT_EQ(g.read_rows(split::kTrain, 0, g.num_rows(split::kTrain)).indices,
            p.read_rows(split::kTrain, 0, p.num_rows(split::kTrain)).indices);
  const std::string gz = read_bytes(dir + "/in.csv.gz");
  write_text(dir + "/cut.csv.gz", gz.substr(0, gz.size() / 2));
  expect_input_error(kPrep + " --format csv --input " + dir + "/cut.csv.gz --output " + dir + "/out.h5",
                     "error: " + dir + "/cut.csv.gz: truncated gzip data");
  EXPECT_FALSE(file_exists(dir + "/out.h5"));
  for (auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Cli, PrepRecboleEndToEnd) {
  const std::string dir = scratch_dir("cli_recbole");
  write_text(dir + "/ml/ml-small.inter", recbole_inter(200, true));
  write_text(dir + "/ml/ml-small.item", "item_id:token\tmovie_title:token_seq\n1\tx\n");
  CommandResult r = run_command(kPrep + " --format recbole --input " + dir + "/ml --output " + dir +
                                "/out.h5 --heldout-users 20 --threshold 3.5 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("value > 3.5"), std::string::npos) << r.output;
  SplitFile f(dir + "/out.h5");
  ProtocolInfo p = f.read_protocol();
  EXPECT_EQ(p.source_format, "recbole");
  EXPECT_TRUE(p.has_threshold);
  EXPECT_DOUBLE_EQ(p.threshold, 3.5);
  EXPECT_EQ(p.min_items_per_user, 5);  // the csv defaults
  // Only the rating-5 half is kept: users with 6..15 interactions keep 3..8, those under 5 go.
  EXPECT_EQ(f.num_rows(split::kTestFoldIn), 20);
  const std::int64_t train = f.num_rows(split::kTrain);
  EXPECT_GT(train, 0);
  EXPECT_LT(train, 160);
  for (const std::string& id : f.read_user_ids(split::kTrain)) EXPECT_EQ(id[0], 'u') << id;

  // Without a rating column every interaction counts; a threshold then has nothing to filter.
  write_text(dir + "/plain.inter", recbole_inter(200, false));
  r = run_command(kPrep + " --quiet --format recbole --input " + dir + "/plain.inter --output " + dir +
                  "/plain.h5 --heldout-users 20");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SplitFile q(dir + "/plain.h5");
  EXPECT_EQ(q.num_rows(split::kTrain), 160);
  EXPECT_FALSE(q.read_protocol().has_threshold);
  expect_input_error(kPrep + " --format recbole --input " + dir + "/plain.inter --output " + dir +
                         "/t.h5 --heldout-users 20 --threshold 3",
                     "needs a value column (rating)");
  EXPECT_FALSE(file_exists(dir + "/t.h5"));
  write_text(dir + "/bad.inter", "user:token\titem_id:token\n1\t2\n");
  expect_input_error(kPrep + " --format recbole --input " + dir + "/bad.inter --output " + dir + "/t.h5",
                     dir + "/bad.inter:1: header");
  expect_input_error(kPrep + " --format recbole --input " + dir + "/ml,x --output " + dir + "/t.h5",
                     "give one --input");
}
