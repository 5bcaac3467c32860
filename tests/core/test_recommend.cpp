// recvae_recommend and model.h5: the lists reproduce the run's own test figure, a CSV history
// folds in like the split's row, and the export read through the HDF5 C API alone scores like
// the model.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "../common/fixtures.h"
#include "../common/test_util.h"
#include "recvae/batch/sparse_batch.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/dist/comm.h"
#include "recvae/serve/recommender.h"
#include "recvae/train/trainer.h"
#include "recvae/models/ease.h"
#include "recvae/models/multdae.h"
#include "recvae/models/multvae.h"
#include "recvae/models/wmf.h"
#include "recvae/models/ract.h"

namespace recvae {
namespace {

struct TrainedRun {
  std::string dir, data, run;
};

// One Mult-DAE run and one EASE run on the same small split, trained once for the whole file.
const TrainedRun& trained(const std::string& type) {
  static std::map<std::string, TrainedRun> runs;
  auto it = runs.find(type);
  if (it != runs.end()) return it->second;
  static const std::string dir = testing::scratch_dir("recommend");
  static const std::string data = testing::make_synthetic_split(dir, 900, 250, 120, 5);
  auto comm = make_mpi_communicator();
  Config c = testing::small_config(data, dir + "/" + type);
  c.model.type = type;
  c.section<MultDAEConfig>().latent_dim = 24;
  c.section<MultVAEConfig>().hidden_dim = 32;
  c.section<MultVAEConfig>().latent_dim = 8;
  c.section<EASEConfig>().lambda = {40};
  c.section<WMFConfig>().dim = c.section<PMFConfig>().dim = 8;
  c.train.epochs = 3;
  if (type == "ract") {  // a Mult-VAE actor trained in the run, then one epoch of each phase
    c.section<RaCTConfig>().actor = "multvae";
    c.section<RaCTConfig>().actor_epochs = c.section<RaCTConfig>().critic_epochs = c.section<RaCTConfig>().ac_epochs =
        1;
  }
  Trainer(c, *comm).run();
  return runs[type] = TrainedRun{dir, data, c.output.dir};
}

double final_test_ndcg(const std::string& run) {
  std::ifstream in(run + "/final.json");
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str(), key = "\"ndcg@100\": ";
  const auto at = s.find(key);
  EXPECT_NE(at, std::string::npos);
  return std::stod(s.substr(at + key.size()));
}

// user -> items in rank order, read back from a recommendations CSV (ids here need no quotes).
std::map<std::string, std::vector<std::pair<std::string, double>>> read_recs(const std::string& path) {
  std::map<std::string, std::vector<std::pair<std::string, double>>> out;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "user,rank,item,score");
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::string user, rank, item, score;
    std::getline(fields, user, ',');
    std::getline(fields, rank, ',');
    std::getline(fields, item, ',');
    std::getline(fields, score, ',');
    auto& list = out[user];
    EXPECT_EQ(std::stoi(rank), static_cast<int>(list.size()) + 1) << line;
    list.emplace_back(item, std::stod(score));
  }
  return out;
}

// Mean NDCG@100 of `recs` (user id -> items in rank order) against the split's test holdout,
// computed here independently of src/eval; also checks that no fold-in item is listed and that
// every user got min(100, unseen items) entries.
double test_ndcg_of(const std::map<std::string, std::vector<std::pair<std::string, double>>>& recs,
                    const std::string& data) {
  SplitFile file(data);
  const CsrMatrix fold_in = file.read_rows(split::kTestFoldIn, 0, file.num_rows(split::kTestFoldIn));
  const CsrMatrix holdout = file.read_rows(split::kTestHoldout, 0, file.num_rows(split::kTestHoldout));
  const auto users = file.read_user_ids("test");
  const auto items = file.read_item_ids();
  EXPECT_EQ(static_cast<std::int64_t>(users.size()), holdout.rows);
  EXPECT_EQ(recs.size(), users.size());
  double sum = 0;
  std::int64_t counted = 0;
  for (std::int64_t u = 0; u < holdout.rows; ++u) {
    std::set<std::string> relevant, seen;
    for (auto e = holdout.indptr[u]; e < holdout.indptr[u + 1]; ++e) relevant.insert(items[holdout.indices[e]]);
    for (auto e = fold_in.indptr[u]; e < fold_in.indptr[u + 1]; ++e) seen.insert(items[fold_in.indices[e]]);
    const auto found = recs.find(users[u]);
    if (found == recs.end()) {
      ADD_FAILURE() << "no list for user " << users[u];
      continue;
    }
    const auto& list = found->second;
    EXPECT_EQ(list.size(), std::min<std::size_t>(100, items.size() - seen.size()));
    double dcg = 0, ideal = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      EXPECT_EQ(seen.count(list[i].first), 0u) << "a fold-in item was recommended";
      if (i > 0) EXPECT_GE(list[i - 1].second, list[i].second);
      if (relevant.count(list[i].first)) dcg += 1.0 / std::log2(static_cast<double>(i) + 2.0);
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(relevant.size(), 100); ++i) ideal += 1.0 / std::log2(i + 2.0);
    if (relevant.empty()) continue;
    sum += dcg / ideal;
    ++counted;
  }
  return sum / static_cast<double>(std::max<std::int64_t>(counted, 1));
}

testing::CommandResult recommend(const std::string& args) {
  return testing::run_command(std::string(RECVAE_RECOMMEND_BIN) + " " + args + " --threads 1 2>&1");
}

TEST(Recommend, TestUsersListsGiveTheRunsTestNDCG) {
  const TrainedRun& t = trained("multdae");
  const std::string out = t.dir + "/recs_test.csv";
  auto r = recommend(t.run + " --split test --k 100 --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto recs = read_recs(out);

  EXPECT_NEAR(test_ndcg_of(recs, t.data), final_test_ndcg(t.run), 1e-4);

  // The HDF5 output holds the same entries.
  const std::string h5out = t.dir + "/recs_test.h5";
  r = recommend(t.run + " --split test --k 100 --output " + h5out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  hid_t f = H5Fopen(h5out.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t ds = H5Dopen2(f, "score", H5P_DEFAULT);
  hid_t space = H5Dget_space(ds);
  std::size_t entries = 0;
  for (const auto& entry : recs) entries += entry.second.size();
  EXPECT_EQ(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)), entries);
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(f);
}

// Every model.type loads from its run directory and ranks as its run evaluated it.
class RecommendEveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(RecommendEveryModel, TestListsGiveTheRunsTestNDCG) {
  const TrainedRun& t = trained(GetParam());
  Recommender rec(t.run, "", "cpu", 1);
  EXPECT_EQ(rec.model_type(), GetParam());
  const UserHistories h = held_out_histories(SplitFile(t.data), "test");
  const TopK top = rec.recommend(h.rows, 0, h.rows.rows, 100, 64);
  std::map<std::string, std::vector<std::pair<std::string, double>>> recs;
  for (std::int64_t e = 0; e < top.size(); ++e)
    recs[h.user_ids[top.user[e]]].emplace_back(rec.item_ids()[top.item[e]], top.score[e]);
  EXPECT_NEAR(test_ndcg_of(recs, t.data), final_test_ndcg(t.run), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Types, RecommendEveryModel,
                         ::testing::Values("recvae", "multvae", "multdae", "cdae", "autorec", "ract", "ease", "slim",
                                           "wmf", "pmf"));

TEST(Recommend, ACsvHistoryFoldsInLikeTheSplitRow) {
  const TrainedRun& t = trained("multdae");
  SplitFile file(t.data);
  const CsrMatrix fold_in = file.read_rows(split::kTestFoldIn, 0, 12);
  const auto users = file.read_user_ids("test");
  const auto items = file.read_item_ids();
  // The first twelve test users' fold-in items under their original ids, quoted and gzip-free,
  // plus an item the model has never seen.
  std::string csv = "user,item\n";
  for (std::int64_t u = 0; u < 12; ++u)
    for (auto e = fold_in.indptr[u]; e < fold_in.indptr[u + 1]; ++e)
      csv += "\"" + users[u] + "\"," + items[fold_in.indices[e]] + "\n";
  csv += users[0] + ",never-seen-item\n";
  testing::write_text(t.dir + "/history.csv", csv);
  auto r = recommend(t.run + " --users " + t.dir + "/history.csv --k 20 --output " + t.dir + "/recs_csv.csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 interaction(s) with 1 item id(s) unknown"), std::string::npos) << r.output;
  r = recommend(t.run + " --split test --k 20 --output " + t.dir + "/recs_split.csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto from_csv = read_recs(t.dir + "/recs_csv.csv"), from_split = read_recs(t.dir + "/recs_split.csv");
  ASSERT_EQ(from_csv.size(), 12u);
  for (const auto& [user, list] : from_csv) {
    const auto& expected = from_split.at(user);
    ASSERT_EQ(list.size(), expected.size()) << user;
    for (std::size_t i = 0; i < list.size(); ++i) {
      EXPECT_EQ(list[i].first, expected[i].first) << user << " rank " << i + 1;
      EXPECT_NEAR(list[i].second, expected[i].second, 1e-5);
    }
  }
}

TEST(Recommend, BadInputExitsTwoWithAMessage) {
  const TrainedRun& t = trained("multdae");
  auto expect_error = [](const testing::CommandResult& r, const std::string& says) {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << r.output;
  };
  const std::string out = t.dir + "/bad.csv";
  expect_error(recommend(t.dir + "/no_such_run --split test --output " + out), "no such run directory");
  expect_error(recommend(t.run + " --output " + out), "exactly one of --split and --users");
  expect_error(recommend(t.run + " --split test"), "no --output");
  expect_error(recommend(t.run + " --split train --output " + out), "--split must be validation or test");
  expect_error(recommend(t.run + " --split test --k 0 --output " + out), "--k must be a positive integer");
  testing::write_text(t.dir + "/unknown.csv", "user,item\nalice,nope\nalice,neither\n");
  expect_error(recommend(t.run + " --users " + t.dir + "/unknown.csv --output " + out), "'alice' has an empty history");
  expect_error(recommend(t.run + " --users " + t.dir + "/missing.csv --output " + out), "no such file");
  // Another split with other items: the model does not fit it.
  const std::string other = testing::make_synthetic_split(testing::scratch_dir("recommend_other"), 300, 120, 40, 9);
  expect_error(recommend(t.run + " --split test --data " + other + " --output " + out), "other items");
  EXPECT_FALSE(testing::file_exists(out));
}

// ---------------------------------------------------------------------------------------------
// model.h5, read through the HDF5 C API only.

std::vector<double> read_weights(hid_t f, const std::string& name, std::vector<hsize_t>& dims) {
  hid_t ds = H5Dopen2(f, ("weights/" + name).c_str(), H5P_DEFAULT);
  EXPECT_GE(ds, 0) << name;
  hid_t space = H5Dget_space(ds);
  dims.assign(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space)), 0);
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  std::vector<double> out(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  EXPECT_GE(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), 0);
  H5Sclose(space);
  H5Dclose(ds);
  return out;
}

std::string read_attr_string(hid_t f, const char* name) {
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  char* p = nullptr;
  H5Aread(a, t, &p);
  std::string s = p ? p : "";
  H5free_memory(p);
  H5Tclose(t);
  H5Aclose(a);
  return s;
}

// Scores of the first ten test users by the model itself, and their fold-in rows.
torch::Tensor model_scores(const TrainedRun& t, CsrMatrix& rows) {
  Recommender rec(t.run, "", "cpu", 1);
  SplitFile file(t.data);
  rows = file.read_rows(split::kTestFoldIn, 0, 10);
  return rec.model().scores(assemble_eval_batch(rows, 0, 10, torch::kCPU)).to(torch::kFloat64).contiguous();
}

// Weights `names` of a run's model.h5 (with their shapes), read through the C API alone; checks
// the file's format attribute and its model type.
std::vector<std::vector<double>> export_weights(const TrainedRun& t, const std::string& type,
                                                const std::vector<std::string>& names,
                                                std::vector<std::vector<hsize_t>>& dims) {
  hid_t f = H5Fopen((t.run + "/model.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  EXPECT_EQ(read_attr_string(f, "format"), "recvae-model");
  EXPECT_EQ(read_attr_string(f, "model_type"), type);
  EXPECT_NE(read_attr_string(f, "config").find("type: " + type), std::string::npos);
  std::vector<std::vector<double>> out;
  dims.assign(names.size(), {});
  for (std::size_t i = 0; i < names.size(); ++i) out.push_back(read_weights(f, names[i], dims[i]));
  H5Fclose(f);
  return out;
}

TEST(ModelExport, MultDAEScoresFromTheFileAlone) {
  const TrainedRun& t = trained("multdae");
  CsrMatrix rows;
  const torch::Tensor expected = model_scores(t, rows);
  const auto want = expected.accessor<double, 2>();
  std::vector<std::vector<hsize_t>> dims;
  const auto w = export_weights(t, "multdae", {"q_w", "q_b", "p.weight", "p.bias"}, dims);
  const auto &q = w[0], &qb = w[1], &p = w[2], &pb = w[3];
  const std::size_t items = dims[0][0], latent = dims[0][1];
  ASSERT_EQ(dims[2][0], items);
  ASSERT_EQ(dims[2][1], latent);
  // Mult-DAE: s = P tanh(x/|x| Q + q) + p.
  double worst = 0;
  for (std::int64_t u = 0; u < rows.rows; ++u) {
    const double norm = std::sqrt(static_cast<double>(rows.row_nnz(u)));
    std::vector<double> h(qb);
    for (auto e = rows.indptr[u]; e < rows.indptr[u + 1]; ++e)
      for (std::size_t j = 0; j < latent; ++j) h[j] += q[static_cast<std::size_t>(rows.indices[e]) * latent + j] / norm;
    for (double& v : h) v = std::tanh(v);
    for (std::size_t i = 0; i < items; ++i) {
      double s = pb[i];
      for (std::size_t j = 0; j < latent; ++j) s += p[i * latent + j] * h[j];
      worst = std::max(worst, std::abs(s - want[u][static_cast<std::int64_t>(i)]) / std::max(1.0, std::abs(s)));
    }
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(ModelExport, EASEScoresFromTheFileAlone) {
  const TrainedRun& t = trained("ease");
  CsrMatrix rows;
  const torch::Tensor expected = model_scores(t, rows);
  const auto want = expected.accessor<double, 2>();
  std::vector<std::vector<hsize_t>> dims;
  const auto b = export_weights(t, "ease", {"B"}, dims)[0];
  ASSERT_EQ(dims[0].size(), 2u);
  const std::size_t items = dims[0][0];
  double worst = 0;
  for (std::int64_t u = 0; u < rows.rows; ++u)
    for (std::size_t i = 0; i < items; ++i) {
      double s = 0;  // EASE: s = x B
      for (auto e = rows.indptr[u]; e < rows.indptr[u + 1]; ++e)
        s += b[static_cast<std::size_t>(rows.indices[e]) * items + i];
      worst = std::max(worst, std::abs(s - want[u][static_cast<std::int64_t>(i)]));
    }
  EXPECT_LT(worst, 1e-5);
}

}  // namespace
}  // namespace recvae
