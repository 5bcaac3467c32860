#include "recvae/trainer.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <thread>

#include "recvae/batch_plan.h"
#include "recvae/error.h"
#include "recvae/evaluator.h"
#include "recvae/h5_dataset.h"
#include "recvae/run_log.h"
#include "recvae/sharding.h"

namespace recvae {

// Note [Gradient sync]
// ~~~~~~~~~~~~~~~~~~~~
// Each optimiser group (encoder, decoder) owns one flat gradient buffer, and every parameter's
// .grad is a view into it, so backward accumulates straight into the buffer and a step costs one
// all-reduce of the whole group, with no packing copies. The loss is already divided by the
// global batch size (Note [World-size invariance]), so the all-reduce *sums*: no averaging by
// world size. The group that a pass does not step has requires_grad off, so backward computes
// no gradient for it (and in decoder passes builds no graph through the encoder at all).

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

torch::Device pick_device(const DistConfig& dist, const ProcessInfo& proc) {
  const bool cuda = torch::cuda::is_available();
  if (dist.device == "cpu") return torch::kCPU;
  if (dist.device == "cuda" || cuda) {
    const int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
    if (proc.local_rank < count) return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(proc.local_rank));
    if (dist.device == "auto" && dist.allow_cpu) return torch::kCPU;
    throw InputError("rank " + std::to_string(proc.rank) + " (local rank " + std::to_string(proc.local_rank) +
                     ") has no GPU of its own (" + std::to_string(count) +
                     " visible); start fewer ranks per node or set dist.device=cpu");
  }
  return torch::kCPU;
}

// A group's parameters with their gradients as views of one flat buffer (Note [Gradient sync]).
struct GradGroup {
  std::vector<torch::Tensor> params;
  torch::Tensor flat;

  void bind(std::vector<torch::Tensor> ps, const torch::Device& device) {
    params = std::move(ps);
    std::int64_t total = 0;
    for (auto& p : params) total += p.numel();
    flat = torch::zeros({total}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    std::int64_t off = 0;
    for (auto& p : params) {
      p.mutable_grad() = flat.narrow(0, off, p.numel()).view(p.sizes());
      off += p.numel();
    }
  }
  void set_requires_grad(bool on) {
    for (auto& p : params) p.set_requires_grad(on);
  }
  std::int64_t bytes() const { return flat.numel() * static_cast<std::int64_t>(sizeof(float)); }
};

void allreduce_group(GradGroup& g, Communicator& comm) {
  if (comm.size() == 1) return;
  if (g.flat.is_cuda() && comm.backend() == "mpi") {  // MPI backend with CUDA tensors: stage on host
    auto host = g.flat.to(torch::kCPU);
    comm.allreduce_sum(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()));
    g.flat.copy_(host);
  } else {
    comm.allreduce_sum(g.flat.data_ptr<float>(), static_cast<std::size_t>(g.flat.numel()));
  }
}

void broadcast_tensor(torch::Tensor t, Communicator& comm) {
  torch::NoGradGuard guard;
  if (t.is_cuda() && comm.backend() == "mpi") {
    auto host = t.to(torch::kCPU).contiguous();
    comm.broadcast(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()), 0);
    t.copy_(host);
  } else {
    comm.broadcast(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()), 0);
  }
}

HeldOutShard load_held_out(const SplitFile& file, const char* fold_in, const char* holdout, int rank, int size) {
  const RowRange r = shard_of(file, fold_in, rank, size);
  return {file.read_rows(fold_in, r.lo, r.hi), file.read_rows(holdout, r.lo, r.hi)};
}

JsonObject metrics_json(const MetricSums& m) {
  JsonObject o;
  o.add("ndcg@100", m.mean_ndcg100()).add("recall@20", m.mean_recall20()).add("recall@50", m.mean_recall50());
  o.add("users", m.users);
  return o;
}

}  // namespace

void configure_host_allocator() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

std::vector<PassSpec> epoch_schedule(const TrainConfig& train) {
  std::vector<PassSpec> passes;
  if (!train.alternating) return {{StepGroup::kBoth, 0, train.dropout, false}};
  for (int p = 0; p < train.encoder_passes; ++p)
    passes.push_back({StepGroup::kEncoder, p, train.dropout, p + 1 == train.encoder_passes});
  for (int p = 0; p < train.decoder_passes; ++p)
    passes.push_back({StepGroup::kDecoder, train.encoder_passes + p, 0.0, false});
  return passes;
}

std::unique_ptr<Communicator> make_communicator(const Config& config) {
  const ProcessInfo proc = init_process();
  const bool on_gpu = pick_device(config.dist, proc).is_cuda();
  if (config.dist.backend == "nccl" && !on_gpu)
    throw InputError("config key 'dist.backend': nccl needs a GPU per rank (this rank computes on the CPU)");
  if (config.dist.backend == "nccl" && !nccl_available())
    throw InputError("config key 'dist.backend': this build has no NCCL backend");
  if (on_gpu && config.dist.backend != "mpi" && nccl_available())
    return make_nccl_communicator(proc.local_rank, config.dist.timeout_seconds);
  return make_mpi_communicator();
}

struct Trainer::Impl {
  Config cfg;
  Communicator& comm;
  torch::Device device{torch::kCPU};
  int threads = 1;
  bool root = false;

  std::int64_t items = 0, train_users = 0;
  RowRange train_range;
  CsrMatrix train;
  HeldOutShard validation, test;
  std::vector<float> popularity;

  RecVAE model{nullptr};
  GradGroup enc, dec;
  std::unique_ptr<torch::optim::Adam> enc_opt, dec_opt;

  Impl(const Config& c, Communicator& cm) : cfg(c), comm(cm) {}
};

Trainer::Trainer(const Config& config, Communicator& comm) : impl_(std::make_unique<Impl>(config, comm)) {
  Impl& s = *impl_;
  const ProcessInfo& proc = comm.info();
  s.root = proc.rank == 0;
  s.threads = config.train.threads > 0
                  ? config.train.threads
                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, proc.local_size));
  torch::set_num_threads(s.threads);
  s.device = pick_device(config.dist, proc);

  // Each rank reads only its own rows (balanced by non-zeros) of every split.
  SplitFile file(config.data.path);
  s.items = file.num_items();
  s.train_users = file.num_rows(split::kTrain);
  s.train_range = shard_of(file, split::kTrain, proc.rank, proc.size);
  s.train = file.read_rows(split::kTrain, s.train_range.lo, s.train_range.hi);
  s.validation = load_held_out(file, split::kValidationFoldIn, split::kValidationHoldout, proc.rank, proc.size);
  s.test = load_held_out(file, split::kTestFoldIn, split::kTestHoldout, proc.rank, proc.size);
  if (s.train_users == 0) throw InputError(config.data.path + ": the train split has no users");

  // Popularity = number of training users per item, summed over the ranks' shards.
  std::vector<double> counts(static_cast<size_t>(s.items), 0.0);
  for (std::int32_t item : s.train.indices) counts[item] += 1.0;
  comm.allreduce_sum_host(counts.data(), counts.size());
  s.popularity.assign(counts.begin(), counts.end());

  ModelShape shape{s.items, config.model.hidden_dim, config.model.latent_dim, config.model.layernorm_eps};
  torch::manual_seed(config.train.seed);
  s.model = RecVAE(shape, config.model.prior_weights, config.model.prior_wide_logvar);
  s.model->to(s.device);
  s.model->train();
  for (auto& p : s.model->parameters()) broadcast_tensor(p, comm);  // identical start on every rank

  s.enc.bind(s.model->encoder_parameters(), s.device);
  s.dec.bind(s.model->decoder_parameters(), s.device);
  const auto adam = torch::optim::AdamOptions(config.train.lr);
  s.enc_opt = std::make_unique<torch::optim::Adam>(s.enc.params, adam);
  s.dec_opt = std::make_unique<torch::optim::Adam>(s.dec.params, adam);
}

Trainer::~Trainer() = default;

RecVAE& Trainer::model() { return impl_->model; }
torch::Device Trainer::device() const { return impl_->device; }
std::int64_t Trainer::num_train_users() const { return impl_->train_users; }

PassStats Trainer::train_pass(int epoch, int pass, StepGroup group, double dropout, std::int64_t max_steps) {
  Impl& s = *impl_;
  const auto t0 = Clock::now();
  const bool step_enc = group != StepGroup::kDecoder, step_dec = group != StepGroup::kEncoder;
  s.enc.set_requires_grad(step_enc);
  s.dec.set_requires_grad(step_dec);

  BatchPlan plan(pass_permutation(s.train_users, s.cfg.train.seed, epoch, pass), s.cfg.train.batch_size,
                 s.train_range.lo, s.train_range.hi);
  std::int64_t steps = plan.num_batches();
  if (max_steps <= 0) max_steps = s.cfg.train.max_steps_per_pass;
  if (max_steps > 0) steps = std::min(steps, max_steps);

  const BatchNoise noise_base{s.cfg.train.seed, epoch, pass, dropout, s.cfg.model.latent_dim};
  const KlWeight kl{s.cfg.train.gamma, s.cfg.train.beta};
  double sums[4] = {0, 0, 0, 0};  // loss * global batch, mll, kl, users
  auto last_print = Clock::now();
  for (std::int64_t b = 0; b < steps; ++b) {
    const LocalBatch lb = plan.batch(b);
    if (step_enc) s.enc.flat.zero_();
    if (step_dec) s.dec.flat.zero_();
    if (!lb.global_rows.empty()) {
      SparseBatch batch = assemble_batch(s.train, s.train_range.lo, lb.global_rows, &noise_base, s.device);
      LossTerms terms = s.model->loss(batch, static_cast<double>(lb.global_size), kl);
      terms.loss.backward();
      const double loss = terms.loss.item<double>();
      if (!std::isfinite(loss))
        throw std::runtime_error("non-finite loss (" + std::to_string(loss) + ") at epoch " +
                                 std::to_string(epoch + 1) + ", pass " + std::to_string(pass + 1) + ", step " +
                                 std::to_string(b + 1));
      sums[0] += loss * static_cast<double>(lb.global_size);
      sums[1] += terms.mll_sum.item<double>();
      sums[2] += terms.kl_sum.item<double>();
      sums[3] += static_cast<double>(lb.global_rows.size());
    }
    // Every rank reaches these collectives for every batch, owning users or not (Note [World-size invariance]).
    if (step_enc) allreduce_group(s.enc, s.comm);
    if (step_dec) allreduce_group(s.dec, s.comm);
    if (step_enc) s.enc_opt->step();
    if (step_dec) s.dec_opt->step();
    if (s.root && s.cfg.output.progress_seconds > 0 && seconds_since(last_print) >= s.cfg.output.progress_seconds) {
      std::fprintf(stderr, "    step %lld/%lld (%.1f s)\n", static_cast<long long>(b + 1),
                   static_cast<long long>(steps), seconds_since(t0));
      last_print = Clock::now();
    }
  }
  s.enc.set_requires_grad(true);
  s.dec.set_requires_grad(true);

  s.comm.allreduce_sum_host(sums, 4);
  PassStats st;
  st.steps = steps;
  st.users = static_cast<std::int64_t>(sums[3] + 0.5);
  if (st.users > 0) {
    st.loss = sums[0] / sums[3];
    st.mll = sums[1] / sums[3];
    st.kl = sums[2] / sums[3];
  }
  st.seconds = seconds_since(t0);
  st.allreduce_bytes = (step_enc ? s.enc.bytes() : 0) + (step_dec ? s.dec.bytes() : 0);
  return st;
}

// Note [Snapshot check]
// ~~~~~~~~~~~~~~~~~~~~~
// Replicas stay identical only if every rank applied the same updates. After each encoder_old
// refresh, every rank reduces a per-tensor fingerprint (sum and sum of squares in double, as raw
// bit patterns) with MAX and MIN; any difference means some rank diverged (a bug, a bad node,
// a perturbed parameter) and the job stops rather than train a silently inconsistent model.
void Trainer::check_replicas_in_sync() {
  Impl& s = *impl_;
  std::vector<std::int64_t> fp;
  {
    torch::NoGradGuard guard;
    for (auto& p : s.model->parameters()) {
      auto d = p.to(torch::kFloat64);
      for (double v : {d.sum().item<double>(), (d * d).sum().item<double>()}) {
        std::int64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        fp.push_back(bits);
      }
    }
  }
  auto hi = fp, lo = fp;
  s.comm.allreduce_max_host(hi.data(), hi.size());
  s.comm.allreduce_min_host(lo.data(), lo.size());
  if (hi != lo) {
    size_t i = 0;
    while (hi[i] == lo[i]) ++i;
    throw std::runtime_error("replica check failed: ranks hold different parameters (tensor " +
                             std::to_string(i / 2) + " of the model differs across ranks)");
  }
}

void Trainer::refresh_prior() {
  impl_->model->refresh_prior();
  check_replicas_in_sync();
}

MetricSums Trainer::evaluate(bool test_split) {
  Impl& s = *impl_;
  const HeldOutShard& shard = test_split ? s.test : s.validation;
  return reduce_metrics(evaluate_model_local(s.model, shard, s.cfg.eval.batch_size, s.device, s.threads), s.comm);
}

MetricSums Trainer::evaluate_popularity(bool test_split) {
  Impl& s = *impl_;
  return reduce_metrics(evaluate_scores_local(s.popularity, test_split ? s.test : s.validation, s.threads), s.comm);
}

RunResult Trainer::run() {
  Impl& s = *impl_;
  const TrainConfig& tc = s.cfg.train;
  RunLog log(s.cfg.output.dir, s.root);
  log.write_config(s.cfg.to_yaml());
  const auto run_start = Clock::now();
  if (s.root)
    std::fprintf(stderr,
                 "recvae: %lld train users, %lld items, %lld validation / %lld test users per rank 0; %d rank(s), "
                 "backend %s, device %s, %d thread(s) per rank\n",
                 static_cast<long long>(s.train_users), static_cast<long long>(s.items),
                 static_cast<long long>(s.validation.fold_in.rows), static_cast<long long>(s.test.fold_in.rows),
                 s.comm.size(), s.comm.backend().c_str(), s.device.str().c_str(), s.threads);

  RunResult result;
  if (s.cfg.eval.popularity_baseline) {
    result.popularity_validation = evaluate_popularity(false);
    if (s.cfg.eval.test) result.popularity_test = evaluate_popularity(true);
    if (s.root)
      std::fprintf(stderr, "popularity baseline: validation ndcg@100 %.4f, test ndcg@100 %.4f\n",
                   result.popularity_validation.mean_ndcg100(), result.popularity_test.mean_ndcg100());
  }

  std::vector<torch::Tensor> best;
  double best_ndcg = -1;
  for (int epoch = 0; epoch < tc.epochs; ++epoch) {
    JsonObject rec;
    rec.add("epoch", epoch + 1);
    double train_seconds = 0;
    std::int64_t train_user_steps = 0, bytes_per_step = 0;
    struct PhaseTotal {
      PassStats sum;
      int passes = 0;
    };
    std::map<std::string, PhaseTotal> phases;
    for (const PassSpec& spec : epoch_schedule(tc)) {
      const char* name = spec.group == StepGroup::kEncoder   ? "encoder"
                         : spec.group == StepGroup::kDecoder ? "decoder"
                                                             : "joint";
      PassStats st = train_pass(epoch, spec.pass, spec.group, spec.dropout);
      PhaseTotal& ph = phases[name];
      ph.passes += 1;
      ph.sum.loss += st.loss;
      ph.sum.mll += st.mll;
      ph.sum.kl += st.kl;
      ph.sum.seconds += st.seconds;
      ph.sum.steps += st.steps;
      train_seconds += st.seconds;
      train_user_steps += st.users;
      bytes_per_step = std::max(bytes_per_step, st.allreduce_bytes);
      if (s.root)
        std::fprintf(stderr, "epoch %d/%d %s pass: loss %.4f (mll %.3f, kl %.3f), %lld steps, %.2f s, %.0f users/s\n",
                     epoch + 1, tc.epochs, name, st.loss, st.mll, st.kl, static_cast<long long>(st.steps),
                     st.seconds, st.users / std::max(st.seconds, 1e-9));
      if (spec.refresh_prior_after) refresh_prior();
    }
    for (const auto& [name, ph] : phases) {
      JsonObject o;
      o.add("loss", ph.sum.loss / ph.passes).add("mll", ph.sum.mll / ph.passes).add("kl", ph.sum.kl / ph.passes);
      o.add("seconds", ph.sum.seconds).add("steps", ph.sum.steps);
      rec.add(name, o);
    }
    const auto te = Clock::now();
    const MetricSums val = evaluate(false);
    const double eval_seconds = seconds_since(te);
    const bool improved = val.mean_ndcg100() > best_ndcg;
    if (improved) {
      best_ndcg = val.mean_ndcg100();
      result.best_epoch = epoch + 1;
      result.best_validation = val;
      torch::NoGradGuard guard;
      best.clear();
      for (auto& p : s.model->parameters()) best.push_back(p.detach().clone());
    }
    rec.add("validation", metrics_json(val));
    rec.add("train_seconds", train_seconds).add("eval_seconds", eval_seconds);
    rec.add("train_users_per_second", train_user_steps / std::max(train_seconds, 1e-9));
    rec.add("allreduce_bytes_per_step", bytes_per_step);
    rec.add("world_size", s.comm.size());
    log.append_epoch(rec);
    if (s.root)
      std::fprintf(stderr, "epoch %d/%d: validation ndcg@100 %.4f recall@20 %.4f recall@50 %.4f%s (train %.1f s, eval %.1f s)\n",
                   epoch + 1, tc.epochs, val.mean_ndcg100(), val.mean_recall20(), val.mean_recall50(),
                   improved ? " *best*" : "", train_seconds, eval_seconds);
  }

  if (!best.empty()) {
    torch::NoGradGuard guard;
    auto params = s.model->parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best[i]);
  }
  if (s.cfg.eval.test) result.test = evaluate(true);
  if (s.root && s.cfg.output.save_model) {
    const std::string path = log.path("best_model.pt"), tmp = path + ".tmp";
    torch::save(s.model, tmp);
    std::filesystem::rename(tmp, path);
  }

  JsonObject fin;
  fin.add("best_epoch", result.best_epoch).add("epochs", tc.epochs);
  fin.add("ndcg@100", result.test.mean_ndcg100())
      .add("recall@20", result.test.mean_recall20())
      .add("recall@50", result.test.mean_recall50())
      .add("test_users", result.test.users);
  fin.add("validation", metrics_json(result.best_validation));
  if (s.cfg.eval.popularity_baseline) {
    fin.add("popularity", metrics_json(result.popularity_test));
    fin.add("popularity_validation", metrics_json(result.popularity_validation));
  }
  fin.add("world_size", s.comm.size()).add("backend", s.comm.backend()).add("device", s.device.str());
  fin.add("seconds", seconds_since(run_start));
  log.write_final(fin);
  if (s.root)
    std::fprintf(stderr,
                 "best epoch %d: test ndcg@100 %.4f recall@20 %.4f recall@50 %.4f (popularity %.4f / %.4f / %.4f); "
                 "%s\n",
                 result.best_epoch, result.test.mean_ndcg100(), result.test.mean_recall20(),
                 result.test.mean_recall50(), result.popularity_test.mean_ndcg100(),
                 result.popularity_test.mean_recall20(), result.popularity_test.mean_recall50(),
                 log.path("final.json").c_str());
  return result;
}

}  // namespace recvae
