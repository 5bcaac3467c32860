#include "recvae/serve/recommender.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unordered_map>

#include "recvae/batch/sparse_batch.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/data/h5_io.h"
#include "recvae/data/raw_readers.h"
#include "recvae/dist/comm.h"
#include "recvae/dist/device_select.h"
#include "recvae/models/ract.h"
#include "recvae/models/registry.h"
#include "recvae/export/model_export.h"
#include "recvae/models/ease.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"
#include "recvae/util/run_dir.h"

namespace fs = std::filesystem;

namespace recvae {

UserHistories held_out_histories(const SplitFile& file, const std::string& split) {
  const char* group = split == "test" ? split::kTestFoldIn : split == "validation" ? split::kValidationFoldIn : nullptr;
  if (!group) throw InputError("--split must be validation or test, not '" + split + "'");
  UserHistories h;
  h.rows = file.read_rows(group, 0, file.num_rows(group));
  h.user_ids = file.read_user_ids(split);
  if (static_cast<std::int64_t>(h.user_ids.size()) != h.rows.rows) {
    h.user_ids.clear();
    for (std::int64_t r = 0; r < h.rows.rows; ++r) h.user_ids.push_back(split + ":" + std::to_string(r));
  }
  return h;
}

UserHistories csv_histories(const std::string& path, const std::vector<std::string>& item_ids) {
  const Interactions in = read_csv(path, /*progress=*/false);
  std::unordered_map<std::string, std::int32_t> column;
  column.reserve(item_ids.size());
  for (std::size_t i = 0; i < item_ids.size(); ++i) column.emplace(item_ids[i], static_cast<std::int32_t>(i));
  // Dense item id of the file -> model column (-1: unknown to the model).
  std::vector<std::int32_t> to_column(in.item_names.size(), -1);
  for (std::size_t i = 0; i < in.item_names.size(); ++i) {
    auto it = column.find(in.item_names[i]);
    if (it != column.end()) to_column[i] = it->second;
  }
  UserHistories h;
  std::vector<std::int64_t> rows;
  std::vector<std::int32_t> cols;
  std::vector<std::int64_t> known(in.user_names.size(), 0), listed(in.user_names.size(), 0);
  std::vector<bool> unknown_seen(in.item_names.size(), false);
  for (std::int64_t e = 0; e < in.size(); ++e) {
    const std::uint32_t u = in.user[e], i = in.item[e];
    ++listed[u];
    if (to_column[i] < 0) {
      ++h.unknown_interactions;
      if (!unknown_seen[i]) ++h.unknown_items;
      unknown_seen[i] = true;
      continue;
    }
    ++known[u];
    rows.push_back(u);
    cols.push_back(to_column[i]);
  }
  for (std::size_t u = 0; u < known.size(); ++u)
    if (known[u] == 0)
      throw InputError(path + ": user '" + in.user_names[u] + "' has an empty history: none of its " +
                       std::to_string(listed[u]) + " item(s) is known to the model, so there is nothing to fold in");
  // Histories are binary, as the split files the models were trained on; duplicates count once.
  h.rows = CsrMatrix::from_triplets(static_cast<std::int64_t>(in.user_names.size()),
                                    static_cast<std::int64_t>(item_ids.size()), rows, cols,
                                    std::vector<float>(rows.size(), 1.0f));
  std::fill(h.rows.data.begin(), h.rows.data.end(), 1.0f);
  h.user_ids = in.user_names;
  return h;
}

struct Recommender::Impl {
  Config config;
  std::string data_path;
  std::vector<std::string> item_ids;
  torch::Device device{torch::kCPU};
  std::unique_ptr<AnyModel> owner;  // the model, of whatever training style
  Model* model = nullptr;           // its core
};

namespace {

std::string shape_text(torch::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

}  // namespace

Recommender::Recommender(const std::string& run_dir, const std::string& data_path, const std::string& device,
                         int threads)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  if (!fs::is_directory(run_dir)) throw InputError(run_dir + ": no such run directory");
  const RunDir run(run_dir);
  const std::string config_path = run.config(), model_path = run.best_model();
  if (!fs::exists(config_path)) throw InputError(run_dir + ": no config.yaml (not a run directory of recvae_dist)");
  if (!fs::exists(model_path))
    throw InputError(run_dir + ": no best_model.pt (the run has not finished, or ran with output.save_model: false)");
  std::vector<std::string> overrides;
  if (!data_path.empty()) overrides.push_back("data.path=" + data_path);
  s.config = load_config(config_path, overrides);
  // RaCT's actor comes from best_model.pt like every other weight: its old run is not needed.
  if (s.config.model.type == RaCTConfig::kName) s.config.section<RaCTConfig>().actor_run.clear();
  s.data_path = s.config.data.path;
  if (data_path.empty() && !fs::exists(s.data_path))
    throw InputError(run_dir + ": the run's data.path '" + s.data_path +
                     "' is not found from here (a relative path is relative to where the run was started): "
                     "give the split file with --data");
  if (threads > 0) torch::set_num_threads(threads);

  DistConfig dist = s.config.dist;
  dist.device = device;
  dist.allow_cpu = true;
  s.device = pick_device(dist, init_process());

  SplitFile file(s.data_path);
  s.item_ids = file.read_item_ids();
  if (static_cast<std::int64_t>(s.item_ids.size()) != file.num_items())
    throw InputError(s.data_path + ": the file stores no item ids");
  const std::string export_path = run.model_export();
  if (fs::exists(export_path)) {
    const auto trained = read_model_export_item_ids(export_path);
    if (trained != s.item_ids)
      throw InputError(run_dir + " was trained on other items than " + s.data_path + " (" +
                       std::to_string(trained.size()) + " items in model.h5, " + std::to_string(s.item_ids.size()) +
                       " in the split file): give the run's split with --data");
  }

  ModelContext ctx;
  ctx.items = file.num_items();
  ctx.train_users = file.num_rows(split::kTrain);
  ctx.local_users_hi = ctx.train_users;  // as a one-rank trainer builds it (ALS checks its shards)
  ctx.device = s.device;
  ctx.data = &file;
  // One process scores with the whole B, also that of a run that split it over its ranks
  // (Note [Distributed EASE]): it is read from model.h5 below.
  if (s.config.model.type == EASEConfig::kName) s.config.section<EASEConfig>().solver = "replicated";
  torch::manual_seed(s.config.train.seed);
  s.owner = std::make_unique<AnyModel>(make_model(s.config, ctx));
  s.model = &s.owner->core();

  torch::nn::Module& m = s.model->module();
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected;
  for (const auto& p : m.named_parameters()) expected.emplace_back(p.key(), p.value().sizes().vec());
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(model_path, s.device);
    torch::NoGradGuard guard;
    m.load(archive);
  } catch (const c10::Error& e) {
    throw InputError(model_path + ": cannot load as a " + s.config.model.type +
                     " model: " + e.what_without_backtrace());
  }
  // Weights a run kept split over its ranks reach best_model.pt empty and model.h5 whole.
  for (auto& b : m.named_buffers()) {
    if (b.value().numel() != 0 || !fs::exists(export_path)) continue;
    torch::Tensor whole = read_model_export_weights(export_path, b.key());
    torch::NoGradGuard guard;
    if (whole.defined()) b.value().set_(whole.to(b.value().options()));
  }
  const auto loaded = m.named_parameters();
  for (const auto& [name, sizes] : expected) {
    const torch::Tensor* t = loaded.find(name);
    if (t && t->sizes().vec() != sizes)
      throw InputError(model_path + ": " + name + " has shape " + shape_text(t->sizes()) + ", but " + s.data_path +
                       " with the run's config needs " + shape_text(sizes) + " (model and data do not match)");
  }
  m.eval();
  // Buffers fitted in closed form (EASE's B, SLIM's W) have no shape to compare before loading:
  // one empty row must score to [1, items].
  try {
    CsrMatrix probe = CsrMatrix::empty(1, ctx.items);
    auto batch = assemble_eval_batch(probe, 0, 1, s.device);
    auto scores = s.model->scores(batch);
    if (scores.dim() != 2 || scores.size(0) != 1 || scores.size(1) != ctx.items)
      throw InputError(model_path + ": the model scores " + shape_text(scores.sizes()) + " for one user, " +
                       s.data_path + " has " + std::to_string(ctx.items) + " items (model and data do not match)");
  } catch (const c10::Error& e) {
    throw InputError(model_path + ": the model does not score " + s.data_path + "'s " + std::to_string(ctx.items) +
                     " items (model and data do not match): " + e.what_without_backtrace());
  }
}

namespace {

// Note [Ties in the lists]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Scores tie exactly more often than one would think: SLIM's sparse W gives most items a score
// of 0, EASE's B many equal small values on tiny data. torch::topk breaks ties in no documented
// order, so the same model could give different lists on CPU and GPU, and lists that disagree
// with the evaluation's host path (eval/metrics.cpp), which prefers the lower item id. Here the
// k-th value t of each row is found by topk; every item above t is in the list, and of the items
// equal to t the lowest ids fill it up (a cumulative count over the tie mask). A stable sort of
// the k chosen items by score then keeps ties in item order. All of it is O(rows x items)
// comparisons on the scores' device: no full sort of the rows.
std::pair<torch::Tensor, torch::Tensor> top_k_lower_id_first(const torch::Tensor& scores, std::int64_t k) {
  const auto kth = std::get<0>(scores.topk(k, 1, /*largest=*/true, /*sorted=*/true)).narrow(1, k - 1, 1);
  const auto above = scores > kth;
  const auto ties = scores == kth;
  const auto room = k - above.sum(1, /*keepdim=*/true);
  const auto chosen = above | (ties & (ties.cumsum(1) <= room));
  // Exactly k per row, in row-major order: each row's items ascending.
  const auto items = chosen.nonzero().select(1, 1).view({scores.size(0), k});
  const auto picked = scores.gather(1, items);
  const auto order = std::get<1>(picked.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  return {picked.gather(1, order), items.gather(1, order)};
}

}  // namespace

Recommender::~Recommender() = default;

std::string Recommender::model_type() const { return impl_->config.model.type; }
const std::string& Recommender::data_path() const { return impl_->data_path; }
const std::vector<std::string>& Recommender::item_ids() const { return impl_->item_ids; }
Model& Recommender::model() { return *impl_->model; }

TopK Recommender::recommend(const CsrMatrix& histories, std::int64_t lo, std::int64_t hi, int k, std::int64_t batch) {
  Impl& s = *impl_;
  if (histories.cols != static_cast<std::int64_t>(s.item_ids.size()))
    throw InputError("histories have " + std::to_string(histories.cols) + " item columns, the model " +
                     std::to_string(s.item_ids.size()));
  TopK out;
  const std::int64_t take = std::min<std::int64_t>(k, histories.cols);
  torch::NoGradGuard guard;
  for (std::int64_t b = lo; b < hi; b += batch) {
    const std::int64_t e = std::min(hi, b + batch);
    auto in = assemble_eval_batch(histories, b, e, s.device);
    auto scores = s.model->scores(in).to(torch::kFloat32);
    if (torch::isnan(scores).any().item<bool>())
      throw std::runtime_error(s.config.model.type + ": NaN scores for users " + std::to_string(b) + ".." +
                               std::to_string(e - 1) + " (a diverged model?)");
    scores.index_put_({in.nnz_row, in.cols}, -std::numeric_limits<float>::infinity());
    auto [values, indices] = top_k_lower_id_first(scores, take);
    values = values.to(torch::kCPU).contiguous();
    indices = indices.to(torch::kCPU).contiguous();
    const float* v = values.data_ptr<float>();
    const std::int64_t* ix = indices.data_ptr<std::int64_t>();
    for (std::int64_t r = 0; r < e - b; ++r) {
      std::int32_t rank = 0;
      for (std::int64_t j = 0; j < take; ++j) {
        const float score = v[r * take + j];
        if (score == -std::numeric_limits<float>::infinity()) break;  // only seen items are left
        out.user.push_back(b + r);
        out.rank.push_back(++rank);
        out.item.push_back(static_cast<std::int32_t>(ix[r * take + j]));
        out.score.push_back(score);
      }
    }
  }
  return out;
}

namespace {

bool needs_quotes(const std::string& s) { return s.find_first_of(",\"\r\n") != std::string::npos; }

void put_csv_field(std::FILE* f, const std::string& s) {
  if (!needs_quotes(s)) {
    std::fputs(s.c_str(), f);
    return;
  }
  std::fputc('"', f);
  for (char c : s) {
    if (c == '"') std::fputc('"', f);
    std::fputc(c, f);
  }
  std::fputc('"', f);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TopK allgather_top_k(const TopK& local, Communicator& comm) {
  TopK all;
  all.user = allgather_host(comm, local.user);
  all.rank = allgather_host(comm, local.rank);
  all.item = allgather_host(comm, local.item);
  all.score = allgather_host(comm, local.score);
  return all;
}

void write_recommendations(const std::string& path, const TopK& recs, const std::vector<std::string>& user_ids,
                           const std::vector<std::string>& item_ids) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) {
      using namespace h5;  // NOLINT
      silence_hdf5();
      std::vector<std::string> users, items;
      users.reserve(recs.user.size());
      items.reserve(recs.item.size());
      for (std::int64_t e = 0; e < recs.size(); ++e) {
        users.push_back(user_ids[recs.user[e]]);
        items.push_back(item_ids[recs.item[e]]);
      }
      Handle f = checked(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                         tmp + ": cannot create file");
      write_strings(f.get(), "user", users, path);
      write_array(f.get(), "rank", H5T_NATIVE_INT32, H5T_STD_I32LE, recs.rank.data(), recs.rank.size(), path);
      write_strings(f.get(), "item", items, path);
      write_array(f.get(), "score", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, recs.score.data(), recs.score.size(), path);
    } else {
      std::FILE* f = std::fopen(tmp.c_str(), "w");
      if (!f) throw InputError(path + ": cannot write (" + std::strerror(errno) + ")");
      std::fputs("user,rank,item,score\n", f);
      for (std::int64_t e = 0; e < recs.size(); ++e) {
        put_csv_field(f, user_ids[recs.user[e]]);
        std::fprintf(f, ",%d,", recs.rank[e]);
        put_csv_field(f, item_ids[recs.item[e]]);
        std::fprintf(f, ",%.9g\n", recs.score[e]);
      }
      const bool ok = std::fflush(f) == 0 && !std::ferror(f);
      std::fclose(f);
      if (!ok) throw std::runtime_error(path + ": write failed (disk full?)");
    }
    fs::rename(tmp, path);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace recvae
