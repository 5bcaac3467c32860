#include "recvae/train/trainer.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <thread>

#include "recvae/batch/batch_plan.h"
#include "recvae/train/checkpoint.h"
#include "recvae/batch/device_batch.h"
#include "recvae/dist/device_select.h"
#include "recvae/dist/grad_sync.h"
#include "recvae/util/cpu_affinity.h"
#include "recvae/util/error.h"
#include "recvae/eval/evaluator.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/train/row_adam.h"
#include "recvae/train/run_log.h"
#include "recvae/serve/model_export.h"
#include "recvae/data/sharding.h"
#include "recvae/train/stop_signal.h"

namespace recvae {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_host_memory_gb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0 / 1e9;  // ru_maxrss is in KiB on Linux
}

HeldOutShard load_held_out(const SplitFile& file, const char* fold_in, const char* holdout, int rank, int size) {
  const RowRange r = shard_of(file, fold_in, rank, size);
  HeldOutShard shard;
  shard.fold_in = file.read_rows(fold_in, r.lo, r.hi);
  shard.holdout = file.read_rows(holdout, r.lo, r.hi);
  return shard;
}

// Test hook: RECVAE_FAULT_RANK=r [RECVAE_FAULT_STEP=k] makes rank r fail at step k (default 0)
// of the first epoch, to test that one failing rank ends the whole job.
void fault_injection_point(int rank, int epoch, std::int64_t step) {
  static const char* fault_rank = std::getenv("RECVAE_FAULT_RANK");
  if (!fault_rank || epoch != 0 || std::atoi(fault_rank) != rank) return;
  const char* fault_step = std::getenv("RECVAE_FAULT_STEP");
  if (step == (fault_step ? std::atoll(fault_step) : 0))
    throw std::runtime_error("injected fault (RECVAE_FAULT_RANK) at step " + std::to_string(step + 1));
}

std::uint64_t fnv1a64(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Identifies a data set: item count, per-split rows and non-zeros, and the item ids.
std::string data_fingerprint(const SplitFile& file) {
  std::string fp = "items=" + std::to_string(file.num_items());
  for (const char* sp : {split::kTrain, split::kValidationFoldIn, split::kValidationHoldout, split::kTestFoldIn,
                         split::kTestHoldout}) {
    const std::int64_t rows = file.num_rows(sp);
    fp += std::string(";") + sp + "=" + std::to_string(rows) + "/" + std::to_string(file.read_indptr(sp, rows, rows)[0]);
  }
  std::string ids;
  for (const auto& id : file.read_item_ids()) ids += id + "\n";
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(ids)));
  return fp + ";item_ids=" + hex;
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

struct Trainer::Impl {
  Config cfg;
  Communicator& comm;
  torch::Device device{torch::kCPU};
  int threads = 1;
  bool root = false;

  std::int64_t items = 0, train_users = 0;
  RowRange train_range;
  CsrMatrix train;
  std::unique_ptr<DeviceShard> train_device;  // set when dist.device_data is on
  HeldOutShard validation, test;
  std::vector<float> popularity;

  std::unique_ptr<Model> model;
  std::vector<ParameterGroup> group_specs;  // the model's groups, in its order
  std::vector<GradGroup> groups;            // their flat gradient buffers
  std::vector<std::unique_ptr<torch::optim::Adam>> adams;  // replicated groups
  std::vector<std::unique_ptr<RowAdam>> row_adams;         // per-user groups
  std::int64_t global_step = 0;             // optimiser steps so far (Mult-VAE's annealing reads it)
  std::string data_fingerprint;  // what the checkpoint's data must match

  // Best epoch so far (restored on resume).
  std::vector<torch::Tensor> best;
  int best_epoch = -1;
  MetricSums best_validation;

  Impl(const Config& c, Communicator& cm) : cfg(c), comm(cm) {}
  void bind_groups();
  void step_group(size_t g);
  torch::Tensor gather_rows(const torch::Tensor& local) const;
  void save_checkpoint(const TrainingPosition& next) const;
  TrainingPosition load_checkpoint(const std::string& path);
};

Trainer::Trainer(const Config& given, Communicator& comm) : impl_(std::make_unique<Impl>(given, comm)) {
  Impl& s = *impl_;
  apply_model_defaults(s.cfg);  // a Config built in code has the shared keys unset
  const Config& config = s.cfg;
  const ProcessInfo& proc = comm.info();
  s.root = proc.rank == 0;
  // Default: the node's CPUs shared by its ranks, but never more than this rank's affinity mask
  // (mpirun binds a rank to one core unless told --bind-to none).
  const int cpus = usable_cpus();
  s.threads = config.train.threads > 0
                  ? config.train.threads
                  : std::max(1, std::min(cpus, static_cast<int>(std::thread::hardware_concurrency()) /
                                                   std::max(1, proc.local_size)));
  if (s.root && s.threads > cpus)
    std::fprintf(stderr,
                 "recvae: warning: train.threads %d, but rank 0 may run on %d CPU(s) only (its affinity mask), so "
                 "its threads share cores and run slower than one; under mpirun add --bind-to none or "
                 "--map-by slot:PE=%d, or lower train.threads\n",
                 s.threads, cpus, s.threads);
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
  s.data_fingerprint = data_fingerprint(file);
  if (config.dist.device_data == "on" || (config.dist.device_data == "auto" && s.device.is_cuda())) {
    s.train_device = std::make_unique<DeviceShard>(DeviceShard::upload(s.train, s.train_range.lo, s.device));
    s.validation.upload(s.device);
    s.test.upload(s.device);
  }
  // "high" lets CUDA matmuls use TF32; the string form of this setting exists in 1.13 and 2.x.
  if (s.device.is_cuda()) at::globalContext().setFloat32MatmulPrecision(config.train.precision == "tf32" ? "high" : "highest");

  // Ranks started with different configs or data files would train different models while
  // exchanging gradients: compare a hash of both across ranks before anything else.
  std::int64_t h[2];
  h[0] = h[1] = static_cast<std::int64_t>(fnv1a64(config.to_yaml() + "\n" + s.data_fingerprint));
  comm.allreduce_max_host(&h[0], 1);
  comm.allreduce_min_host(&h[1], 1);
  if (h[0] != h[1])
    throw InputError("ranks were started with different configs or data files (config/data hash differs across ranks)");

  // Popularity = number of training users per item, summed over the ranks' shards.
  std::vector<double> counts(static_cast<size_t>(s.items), 0.0);
  for (std::int32_t item : s.train.indices) counts[item] += 1.0;
  comm.allreduce_sum_host(counts.data(), counts.size());
  s.popularity.assign(counts.begin(), counts.end());

  torch::manual_seed(config.train.seed);
  ModelContext mctx;
  mctx.items = s.items;
  mctx.train_users = s.train_users;
  mctx.local_users_lo = s.train_range.lo;
  mctx.local_users_hi = s.train_range.hi;
  mctx.device = s.device;
  mctx.data = &file;
  mctx.rank = proc.rank;
  mctx.world_size = proc.size;
  mctx.local_ranks = proc.local_size;
  s.model = make_model(config, mctx);
  s.model->module().train();
  for (auto& p : s.model->parameters()) broadcast_tensor(p, comm);  // identical start on every rank

  s.group_specs = s.model->parameter_groups();
  s.bind_groups();
  for (const auto& g : s.group_specs) {
    if (g.replicated) {
      s.adams.push_back(std::make_unique<torch::optim::Adam>(g.params, torch::optim::AdamOptions(g.lr > 0 ? g.lr : config.train.lr)));
      s.row_adams.emplace_back();
    } else {
      if (g.params.size() != 1 || g.params[0].size(0) != s.train_range.hi - s.train_range.lo)
        throw std::logic_error("model " + s.model->type() + ": per-user group '" + g.name +
                               "' must be one tensor with a row per local training user");
      s.adams.emplace_back();
      s.row_adams.push_back(std::make_unique<RowAdam>(g.params[0], g.lr > 0 ? g.lr : config.train.lr));
    }
  }
}

// (Re)binds every group's gradients to its flat buffer; Module::load replaces parameter data,
// so loading a checkpoint calls it again.
void Trainer::Impl::bind_groups() {
  group_specs = model->parameter_groups();
  groups.resize(group_specs.size());
  for (size_t g = 0; g < group_specs.size(); ++g) groups[g].bind(group_specs[g].params, device);
}

void Trainer::Impl::step_group(size_t g) {
  if (adams[g])
    adams[g]->step();
  else
    row_adams[g]->step();
}

Trainer::~Trainer() = default;

Model& Trainer::model() { return *impl_->model; }
std::int64_t Trainer::num_items() const { return impl_->items; }
std::int64_t Trainer::global_step() const { return impl_->global_step; }
std::string Trainer::fit(int candidate) {
  Impl& s = *impl_;
  return s.model->fit(candidate, FitContext{s.train, s.train_range.lo, s.comm, s.threads, [] { return stop_requested(); }});
}

std::vector<PassSpec> Trainer::schedule(int epoch) { return impl_->model->epoch_schedule(epoch); }
torch::Device Trainer::device() const { return impl_->device; }
std::int64_t Trainer::num_train_users() const { return impl_->train_users; }

// Note [Regularisers after the all-reduce]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A weight penalty (Mult-DAE's lam |W|^2, AutoRec's lambda/2 |W|^2) belongs to the step, not to
// the users of the batch: added to every rank's loss it would be counted N times by the summing
// all-reduce. So a model returns it separately, and every rank backpropagates it into the
// already reduced gradient buffers: the replicas are identical, so each adds the same term, and
// the step is the single-process step at every world size.

// Note [Shared parameter groups]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Two groups may hold the same tensors with different optimisers (RaCT's actor: its own Adam
// for maximum likelihood, a fresh one with another learning rate for the actor-critic phase,
// as the authors' two train ops). A tensor has one .grad, so at the start of every pass the
// stepped groups point their tensors' gradients at their own buffers again (Note [Gradient
// sync]), and requires_grad is switched off for the other groups before it is switched on for
// the stepped ones. No pass steps two groups that share a tensor.

PassStats Trainer::train_pass(int epoch, const PassSpec& spec, std::int64_t max_steps, std::int64_t first_step) {
  Impl& s = *impl_;
  const auto t0 = Clock::now();
  const int pass = spec.pass;
  // A measuring pass (no groups) has nothing to resume: its sums start again from step 0.
  const bool measuring = spec.groups.empty();
  if (measuring) first_step = 0;
  std::vector<bool> stepped(s.groups.size(), false);
  for (int g : spec.groups) stepped.at(static_cast<size_t>(g)) = true;
  for (size_t g = 0; g < s.groups.size(); ++g)
    if (!stepped[g]) s.groups[g].set_requires_grad(false);
  for (size_t g = 0; g < s.groups.size(); ++g)
    if (stepped[g]) {
      s.groups[g].attach();  // Note [Shared parameter groups]
      s.groups[g].set_requires_grad(true);
    }

  // Note [Streams of a second training stage]
  const std::uint64_t seed = stream_seed(s.cfg.train.seed, spec.noise_stream);
  BatchPlan plan(pass_permutation(s.train_users, seed, epoch, pass), s.cfg.train.batch_size,
                 s.train_range.lo, s.train_range.hi);
  std::int64_t steps = plan.num_batches();
  if (max_steps <= 0) max_steps = s.cfg.train.max_steps_per_pass;
  if (max_steps > 0) steps = std::min(steps, max_steps);

  const BatchNoise noise_base{seed, epoch, pass, spec.dropout, s.model->noise_dim()};
  // Loss sums stay on the device and are read every `check_every` steps (every step on the CPU,
  // where reading is free), so a GPU step never waits for the host.
  const std::int64_t check_every = s.device.is_cuda() ? 25 : 1;
  auto acc = torch::zeros({3}, torch::TensorOptions().dtype(torch::kFloat64).device(s.device));
  torch::Tensor model_sums;  // the model's LossTerms::stats, summed over the pass
  double users = 0;
  std::int64_t unchecked_from = first_step;
  auto check_finite = [&](std::int64_t upto) {
    const double v = acc[0].item<double>();
    if (!std::isfinite(v)) {
      const std::string where = unchecked_from + 1 == upto ? "step " + std::to_string(upto)
                                                            : "steps " + std::to_string(unchecked_from + 1) + "-" +
                                                                  std::to_string(upto);
      throw std::runtime_error("non-finite loss (" + std::to_string(v) + ") at epoch " + std::to_string(epoch + 1) +
                               ", pass " + std::to_string(pass + 1) + ", " + where);
    }
    unchecked_from = upto;
  };
  auto last_print = Clock::now();
  PassStats st;
  st.next_step = steps;
  for (std::int64_t b = first_step; b < steps; ++b) {
    const LocalBatch lb = plan.batch(b);
    for (size_t g = 0; g < s.groups.size(); ++g)
      if (stepped[g]) s.groups[g].flat.zero_();
    const StepContext ctx{static_cast<double>(lb.global_size), s.global_step, &spec};
    fault_injection_point(s.comm.rank(), epoch, b);
    if (!lb.global_rows.empty()) {
      SparseBatch batch = s.train_device ? assemble_batch_on_device(*s.train_device, lb.global_rows, &noise_base)
                                         : assemble_batch(s.train, s.train_range.lo, lb.global_rows, &noise_base, s.device);
      LossTerms terms;
      if (measuring) {
        torch::NoGradGuard no_grad;
        terms = s.model->loss(batch, ctx);
      } else {
        terms = s.model->loss(batch, ctx);
        terms.loss.backward();
      }
      acc += torch::stack({terms.loss.detach() * static_cast<double>(lb.global_size), terms.mll_sum, terms.kl_sum})
                 .to(torch::kFloat64);
      if (terms.stats.defined()) {
        auto sums = terms.stats.detach().to(torch::kFloat64);
        model_sums = model_sums.defined() ? model_sums + sums : sums;
      }
      users += static_cast<double>(lb.global_rows.size());
    }
    if ((b + 1 - first_step) % check_every == 0 || b + 1 == steps) check_finite(b + 1);
    // Every rank reaches these collectives for every batch, owning users or not (Note [World-size invariance]).
    if (!measuring) {
      for (size_t g = 0; g < s.groups.size(); ++g)
        if (stepped[g] && s.group_specs[g].replicated) allreduce_group(s.groups[g], s.comm);
      torch::Tensor penalty = s.model->regularizer(ctx);  // Note [Regularisers after the all-reduce]
      if (penalty.defined() && penalty.requires_grad()) penalty.backward();
      for (size_t g = 0; g < s.groups.size(); ++g)
        if (stepped[g]) s.step_group(g);
      ++s.global_step;
    }
    if (s.root && s.cfg.output.progress_seconds > 0 && seconds_since(last_print) >= s.cfg.output.progress_seconds) {
      std::fprintf(stderr, "    step %lld/%lld (%.1f s)\n", static_cast<long long>(b + 1),
                   static_cast<long long>(steps), seconds_since(t0));
      last_print = Clock::now();
    }
    // A signal may reach the ranks at different steps: they agree on it (one small all-reduce)
    // so that all stop after the same step.
    std::int64_t stop = stop_requested() ? 1 : 0;
    s.comm.allreduce_max_host(&stop, 1);
    if (stop) {
      st.interrupted = true;
      st.next_step = b + 1;
      break;
    }
  }
  for (auto& g : s.groups) g.set_requires_grad(true);
  if (unchecked_from < st.next_step) check_finite(st.next_step);

  double sums[4];
  auto host = acc.to(torch::kCPU);
  for (int i = 0; i < 3; ++i) sums[i] = host[i].item<double>();
  sums[3] = users;
  s.comm.allreduce_sum_host(sums, 4);
  // The model's sums: a rank that met no user has none, so the length is agreed first.
  std::vector<double> model_totals;
  if (model_sums.defined()) {
    auto host_sums = model_sums.to(torch::kCPU).contiguous();
    model_totals.assign(host_sums.data_ptr<double>(), host_sums.data_ptr<double>() + host_sums.numel());
  }
  std::int64_t width = static_cast<std::int64_t>(model_totals.size());
  s.comm.allreduce_max_host(&width, 1);
  model_totals.resize(static_cast<size_t>(width), 0.0);
  if (width > 0) s.comm.allreduce_sum_host(model_totals.data(), model_totals.size());
  if (!st.interrupted) st.figures = s.model->pass_summary(spec, model_totals);
  st.steps = st.next_step - std::min(first_step, st.next_step);
  st.users = static_cast<std::int64_t>(sums[3] + 0.5);
  if (st.users > 0) {
    st.loss = sums[0] / sums[3];
    st.mll = sums[1] / sums[3];
    st.kl = sums[2] / sums[3];
  }
  st.seconds = seconds_since(t0);
  for (size_t g = 0; g < s.groups.size(); ++g)
    if (stepped[g] && s.group_specs[g].replicated) st.allreduce_bytes += s.groups[g].bytes();
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

void Trainer::end_pass(const PassSpec& spec) {
  if (impl_->model->after_pass(spec)) check_replicas_in_sync();
}

MetricSums Trainer::evaluate(bool test_split) {
  Impl& s = *impl_;
  const HeldOutShard& shard = test_split ? s.test : s.validation;
  return reduce_metrics(evaluate_model_local(*s.model, shard, s.cfg.eval.batch_size, s.device, s.threads), s.comm);
}

MetricSums Trainer::evaluate_popularity(bool test_split) {
  Impl& s = *impl_;
  return reduce_metrics(evaluate_scores_local(s.popularity, test_split ? s.test : s.validation, s.threads), s.comm);
}

// Note [Checkpoint contents]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Replicas are identical (Note [Snapshot check]), so rank 0 writes one checkpoint for all and
// any number of ranks can resume from it. It holds everything the rest of the run depends on:
// the model's replicated module (RecVAE: encoder, encoder_old, decoder); one Adam state per
// replicated group; per-user groups gathered from every rank with their Adam moments (Note
// [Per-user parameters] in models/cdae.cpp); the global step count; the best epoch's
// parameters and metrics; the progress of a closed-form fit stopped part-way (Note [Resumable
// fits] in models/model.cpp; the position's epoch is then the candidate, its step 1); and the
// position (epoch, pass, step). The random streams need no
// state: they are functions of (seed, epoch, pass, user) (Note [World-size invariance]). So a
// resumed run computes exactly what the uninterrupted run would have.

// The full table of a per-user tensor: every rank places its rows, one sum all-reduce joins them.
torch::Tensor Trainer::Impl::gather_rows(const torch::Tensor& local) const {
  torch::NoGradGuard guard;
  std::vector<std::int64_t> sizes = local.sizes().vec();
  sizes[0] = train_users;
  auto full = torch::zeros(sizes, local.options());
  full.narrow(0, train_range.lo, local.size(0)).copy_(local);
  allreduce_tensor(full, comm);
  return full;
}

void Trainer::Impl::save_checkpoint(const TrainingPosition& next) const {
  // Every rank joins the per-user gathers; only rank 0 writes.
  std::vector<std::array<torch::Tensor, 3>> per_user(groups.size());
  for (size_t g = 0; g < groups.size(); ++g)
    if (row_adams[g])
      per_user[g] = {gather_rows(row_adams[g]->param), gather_rows(row_adams[g]->exp_avg),
                     gather_rows(row_adams[g]->exp_avg_sq)};
  if (!root) return;
  char name[64];
  std::snprintf(name, sizeof name, "epoch-%04d-pass-%02d-step-%06lld", next.epoch, next.schedule_index,
                static_cast<long long>(next.step));
  CheckpointStore(cfg.output.dir, cfg.output.checkpoint_keep).save(name, [&](torch::serialize::OutputArchive& a) {
    a.write("format", c10::IValue(static_cast<std::int64_t>(2)));
    a.write("model_type", c10::IValue(model->type()));
    torch::serialize::OutputArchive m;
    model->module().save(m);
    a.write("model", m);
    for (size_t g = 0; g < groups.size(); ++g) {
      const std::string key = "group_" + group_specs[g].name;
      if (adams[g]) {
        torch::serialize::OutputArchive o;
        adams[g]->save(o);
        a.write(key + "_adam", o);
      } else {
        a.write(key + "_rows", per_user[g][0]);
        a.write(key + "_exp_avg", per_user[g][1]);
        a.write(key + "_exp_avg_sq", per_user[g][2]);
        a.write(key + "_steps", c10::IValue(row_adams[g]->steps));
      }
    }
    a.write("global_step", c10::IValue(global_step));
    a.write("epoch", c10::IValue(static_cast<std::int64_t>(next.epoch)));
    a.write("schedule_index", c10::IValue(static_cast<std::int64_t>(next.schedule_index)));
    a.write("step", c10::IValue(next.step));
    for (const auto& [key, value] : model->shape()) a.write("shape_" + key, c10::IValue(value));
    const torch::Tensor progress = model->fit_progress();  // Note [Resumable fits]
    if (progress.defined()) a.write("fit_progress", progress);
    a.write("data_fingerprint", c10::IValue(data_fingerprint));
    a.write("config", c10::IValue(cfg.to_yaml()));
    a.write("best_epoch", c10::IValue(static_cast<std::int64_t>(best_epoch)));
    a.write("best_ndcg100", c10::IValue(best_validation.ndcg100));
    a.write("best_recall20", c10::IValue(best_validation.recall20));
    a.write("best_recall50", c10::IValue(best_validation.recall50));
    a.write("best_users", c10::IValue(best_validation.users));
    a.write("best_count", c10::IValue(static_cast<std::int64_t>(best.size())));
    for (size_t i = 0; i < best.size(); ++i) a.write("best_" + std::to_string(i), best[i]);
  });
}

TrainingPosition Trainer::Impl::load_checkpoint(const std::string& path) {
  TrainingPosition pos;
  CheckpointStore::load(path, device, [&](torch::serialize::InputArchive& a) {
    if (read_int(a, "format") != 2)
      throw InputError(path + ": checkpoint format " + std::to_string(read_int(a, "format")) +
                       " was written by an older recvae (format 2 needed); start a new run directory");
    // Refuse another model type, shape or data set, naming the difference.
    const std::string saved_type = read_string(a, "model_type");
    if (saved_type != model->type())
      throw InputError(path + ": checkpoint is of model.type " + saved_type + ", this run's model.type is " +
                       model->type());
    for (const auto& [key, now] : model->shape()) {
      c10::IValue saved_value;
      if (!a.try_read("shape_" + key, saved_value))
        throw InputError(path + ": checkpoint has no " + key + " (it was made by a " + saved_type +
                         " model of another configuration), this run has " + key + "=" + std::to_string(now));
      const std::int64_t saved = saved_value.toInt();
      if (saved != now)
        throw InputError(path + ": checkpoint has " + key + "=" + std::to_string(saved) + ", this run has " +
                         std::to_string(now));
    }
    const std::string fp = read_string(a, "data_fingerprint");
    if (fp != data_fingerprint)
      throw InputError(path + ": checkpoint was made on another data set (" + fp + "), this run's data.path " +
                       cfg.data.path + " is " + data_fingerprint);
    torch::serialize::InputArchive m;
    a.read("model", m);
    {
      torch::NoGradGuard guard;
      model->module().load(m);
    }
    for (size_t g = 0; g < groups.size(); ++g) {
      const std::string key = "group_" + group_specs[g].name;
      if (adams[g]) {
        torch::serialize::InputArchive o;
        a.read(key + "_adam", o);
        adams[g]->load(o);
        continue;
      }
      // Per-user rows: cut this rank's range out of the gathered table (any world size).
      RowAdam& opt = *row_adams[g];
      torch::Tensor rows, m1, m2;
      a.read(key + "_rows", rows);
      a.read(key + "_exp_avg", m1);
      a.read(key + "_exp_avg_sq", m2);
      if (rows.size(0) != train_users)
        throw InputError(path + ": checkpoint has " + std::to_string(rows.size(0)) + " rows of '" + group_specs[g].name +
                         "', the data set has " + std::to_string(train_users) + " training users");
      const std::int64_t n = train_range.hi - train_range.lo;
      torch::NoGradGuard guard;
      opt.param.copy_(rows.narrow(0, train_range.lo, n));
      opt.exp_avg.copy_(m1.narrow(0, train_range.lo, n));
      opt.exp_avg_sq.copy_(m2.narrow(0, train_range.lo, n));
      opt.steps = read_int(a, key + "_steps");
    }
    torch::Tensor progress;
    if (a.try_read("fit_progress", progress)) model->restore_fit_progress(progress);
    global_step = read_int(a, "global_step");
    pos.epoch = static_cast<int>(read_int(a, "epoch"));
    pos.schedule_index = static_cast<int>(read_int(a, "schedule_index"));
    pos.step = read_int(a, "step");
    best_epoch = static_cast<int>(read_int(a, "best_epoch"));
    best_validation.ndcg100 = read_double(a, "best_ndcg100");
    best_validation.recall20 = read_double(a, "best_recall20");
    best_validation.recall50 = read_double(a, "best_recall50");
    best_validation.users = read_int(a, "best_users");
    best.assign(static_cast<size_t>(read_int(a, "best_count")), torch::Tensor());
    for (size_t i = 0; i < best.size(); ++i) a.read("best_" + std::to_string(i), best[i]);
  });
  // Module::load replaces parameter data; the gradients must stay views of the flat buffers.
  bind_groups();
  return pos;
}

RunResult Trainer::run(bool resume) {
  Impl& s = *impl_;
  const TrainConfig& tc = s.cfg.train;
  const auto run_start = Clock::now();
  const CheckpointStore store(s.cfg.output.dir, s.cfg.output.checkpoint_keep);

  // Every rank reads the same checkpoint (a shared file system), so all restore the same state.
  std::string checkpoint;
  if (resume || s.cfg.output.auto_resume) {
    checkpoint = store.latest();
    if (checkpoint.empty() && resume)
      throw InputError("--resume: no checkpoint in " + s.cfg.output.dir + "/checkpoints");
  }
  TrainingPosition pos;
  if (!checkpoint.empty()) pos = s.load_checkpoint(checkpoint);
  check_replicas_in_sync();

  RunLog log(s.cfg.output.dir, s.root, !checkpoint.empty(), pos.epoch);
  log.write_config(s.cfg.to_yaml());
  if (s.root) {
    std::fprintf(stderr,
                 "recvae: model %s; %lld train users, %lld items; %d rank(s), backend %s, device %s, %d thread(s) per rank\n",
                 s.model->type().c_str(), static_cast<long long>(s.train_users), static_cast<long long>(s.items), s.comm.size(),
                 s.comm.backend().c_str(), s.device.str().c_str(), s.threads);
    const int fits = s.model->fit_candidates();
    const bool in_refit = pos.epoch >= fits;  // stopped while fitting the best again
    if (!checkpoint.empty() && fits > 0)
      std::fprintf(stderr, "recvae: resumed from %s at fit %d of %d%s%s\n", checkpoint.c_str(),
                   in_refit ? s.best_epoch : pos.epoch + 1, fits, in_refit ? " (the best, fitted again)" : "",
                   s.model->fit_progress().defined() ? ", part-way (Note [Resumable fits])" : "");
    else if (!checkpoint.empty())
      std::fprintf(stderr, "recvae: resumed from %s at epoch %d, pass %d, step %lld\n", checkpoint.c_str(),
                   pos.epoch + 1, pos.schedule_index + 1, static_cast<long long>(pos.step));
  }

  RunResult result;
  if (s.cfg.eval.popularity_baseline) {
    result.popularity_validation = evaluate_popularity(false);
    if (s.cfg.eval.test) result.popularity_test = evaluate_popularity(true);
    if (s.root)
      std::fprintf(stderr, "popularity baseline: validation ndcg@100 %.4f, test ndcg@100 %.4f\n",
                   result.popularity_validation.mean_ndcg100(), result.popularity_test.mean_ndcg100());
  }

  // Note [Closed-form models] (model.cpp): every candidate is fitted and evaluated as an epoch
  // would be; the model keeps only its latest fit, so the best one is fitted again at the end.
  // A resumed run starts at the candidate it stopped in or before (Note [Resumable fits]).
  const int candidates = s.model->fit_candidates();
  std::string best_fit;
  if (candidates > 0) {
    int fitted = -1;  // the candidate whose fit the model holds
    // A fit stopped part-way: checkpoint what it did at the candidate's position, step 1.
    auto stopped_inside = [&](int i) {
      if (!s.model->fit_progress().defined()) return false;
      s.save_checkpoint({i, 0, 1});
      if (s.root)
        std::fprintf(stderr, "recvae: stop requested: checkpoint written inside fit %d (%s); exiting\n", i + 1,
                     s.model->fit_name(i).c_str());
      result.stopped_on_signal = true;
      return true;
    };
    for (int i = pos.epoch; i < candidates; ++i) {
      const auto t0 = Clock::now();
      const std::string name = fit(i);
      if (stopped_inside(i)) return result;
      fitted = i;
      const double fit_seconds = seconds_since(t0);
      const auto te = Clock::now();
      const MetricSums val = evaluate(false);
      const bool improved = s.best_epoch < 0 || val.mean_ndcg100() > s.best_validation.mean_ndcg100();
      if (improved) {
        s.best_epoch = i + 1;
        s.best_validation = val;
      }
      double memory = peak_host_memory_gb();
      s.comm.allreduce_sum_host(&memory, 1);
      JsonObject rec;
      rec.add("epoch", i + 1).add("fit", name).add("validation", metrics_json(val));
      rec.add("fit_seconds", fit_seconds).add("eval_seconds", seconds_since(te));
      rec.add("peak_host_memory_gb_sum_over_ranks", memory).add("world_size", s.comm.size());
      log.append_epoch(rec);
      if (s.root)
        std::fprintf(stderr, "fit %d/%d %s: validation ndcg@100 %.4f recall@20 %.4f recall@50 %.4f%s (fit %.1f s, peak host memory %.2f GB over all ranks)\n",
                     i + 1, candidates, name.c_str(), val.mean_ndcg100(), val.mean_recall20(),
                     val.mean_recall50(), improved ? " *best*" : "", fit_seconds, memory);
      if (i + 1 == candidates) break;
      std::int64_t stop = stop_requested() ? 1 : 0;
      s.comm.allreduce_max_host(&stop, 1);
      if (stop) {
        s.model->release_fit();
        s.save_checkpoint({i + 1, 0, 0});
        if (s.root)
          std::fprintf(stderr, "recvae: stop requested: checkpoint written after fit %d of %d; exiting\n", i + 1,
                       candidates);
        result.stopped_on_signal = true;
        return result;
      }
    }
    best_fit = s.model->fit_name(s.best_epoch - 1);
    if (fitted != s.best_epoch - 1) {
      fit(s.best_epoch - 1);
      if (stopped_inside(candidates)) return result;
    }
  }
  const int last_epoch = candidates > 0 ? pos.epoch : tc.epochs;
  for (int epoch = pos.epoch; epoch < last_epoch; ++epoch) {
    const std::vector<PassSpec> schedule = s.model->epoch_schedule(epoch);
    JsonObject rec;
    rec.add("epoch", epoch + 1);
    double train_seconds = 0;
    std::int64_t train_user_steps = 0, bytes_per_step = 0;
    struct PhaseTotal {
      PassStats sum;
      int passes = 0;
    };
    std::map<std::string, PhaseTotal> phases;
    const int first_index = epoch == pos.epoch ? pos.schedule_index : 0;
    // An epoch entered at its start (also on resume from an end-of-epoch checkpoint) runs the
    // model's epoch hook; one re-entered in the middle had it before the checkpoint.
    double hook_seconds = 0;
    if (first_index == 0 && (epoch != pos.epoch || pos.step == 0)) {
      const auto th = Clock::now();
      if (s.model->before_epoch(epoch, FitContext{s.train, s.train_range.lo, s.comm, s.threads, {}}))
        check_replicas_in_sync();
      hook_seconds = seconds_since(th);
    }
    for (int i = first_index; i < static_cast<int>(schedule.size()); ++i) {
      const PassSpec& spec = schedule[i];
      const char* name = spec.phase.c_str();
      const std::int64_t first_step = epoch == pos.epoch && i == pos.schedule_index ? pos.step : 0;
      PassStats st = train_pass(epoch, spec, 0, first_step);
      PhaseTotal& ph = phases[name];
      ph.passes += 1;
      ph.sum.loss += st.loss;
      ph.sum.mll += st.mll;
      ph.sum.kl += st.kl;
      ph.sum.seconds += st.seconds;
      ph.sum.steps += st.steps;
      ph.sum.figures = st.figures;  // a phase's figures: those of its last pass
      train_seconds += st.seconds;
      train_user_steps += st.users;
      bytes_per_step = std::max(bytes_per_step, st.allreduce_bytes);
      if (s.root) {
        std::string figures;
        for (const auto& [key, value] : st.figures) figures += ", " + key + " " + std::to_string(value);
        std::fprintf(stderr, "epoch %d/%d %s pass: loss %.4f (mll %.3f, kl %.3f), %lld steps, %.2f s, %.0f users/s%s\n",
                     epoch + 1, tc.epochs, name, st.loss, st.mll, st.kl, static_cast<long long>(st.steps),
                     st.seconds, st.users / std::max(st.seconds, 1e-9), figures.c_str());
      }
      if (st.interrupted) {
        // The refresh after this pass (if any) runs on resume, which re-enters this pass at its end.
        s.save_checkpoint({epoch, i, st.next_step});
        if (s.root)
          std::fprintf(stderr, "recvae: stop requested: checkpoint written at epoch %d, pass %d, step %lld; exiting\n",
                       epoch + 1, i + 1, static_cast<long long>(st.next_step));
        result.stopped_on_signal = true;
        return result;
      }
      end_pass(spec);
    }
    for (const auto& [name, ph] : phases) {
      JsonObject o;
      o.add("loss", ph.sum.loss / ph.passes).add("mll", ph.sum.mll / ph.passes).add("kl", ph.sum.kl / ph.passes);
      o.add("seconds", ph.sum.seconds).add("steps", ph.sum.steps);
      for (const auto& [key, value] : ph.sum.figures) o.add(key, value);
      rec.add(name, o);
    }
    const auto te = Clock::now();
    const MetricSums val = evaluate(false);
    const double eval_seconds = seconds_since(te);
    const bool improved = s.best_epoch < 0 || val.mean_ndcg100() > s.best_validation.mean_ndcg100();
    if (improved) {
      s.best_epoch = epoch + 1;
      s.best_validation = val;
      torch::NoGradGuard guard;
      s.best.clear();
      for (auto& p : s.model->parameters()) s.best.push_back(p.detach().clone());
    }
    rec.add("validation", metrics_json(val));
    const auto summary = s.model->epoch_summary();
    if (!summary.empty()) {
      JsonObject o;
      for (const auto& [key, value] : summary) o.add(key, value);
      rec.add("model", o);
    }
    if (hook_seconds > 0) rec.add("epoch_start_seconds", hook_seconds);
    rec.add("train_seconds", train_seconds).add("eval_seconds", eval_seconds);
    rec.add("train_users_per_second", train_user_steps / std::max(train_seconds, 1e-9));
    rec.add("allreduce_bytes_per_step", bytes_per_step);
    rec.add("world_size", s.comm.size());
    log.append_epoch(rec);
    if (s.root) {
      std::string extra;
      for (const auto& [key, value] : summary) extra += ", " + key + " " + std::to_string(value);
      if (hook_seconds > 0) {
        char buf[64];
        std::snprintf(buf, sizeof buf, ", epoch start %.1f s", hook_seconds);
        extra += buf;
      }
      std::fprintf(stderr, "epoch %d/%d: validation ndcg@100 %.4f recall@20 %.4f recall@50 %.4f%s (train %.1f s, eval %.1f s%s)\n",
                   epoch + 1, tc.epochs, val.mean_ndcg100(), val.mean_recall20(), val.mean_recall50(),
                   improved ? " *best*" : "", train_seconds, eval_seconds, extra.c_str());
    }
    const bool last = epoch + 1 == tc.epochs;
    const bool due = s.cfg.output.checkpoint_every > 0 && (epoch + 1) % s.cfg.output.checkpoint_every == 0;
    std::int64_t stop = stop_requested() ? 1 : 0;
    s.comm.allreduce_max_host(&stop, 1);
    if (due || last || stop) s.save_checkpoint({epoch + 1, 0, 0});
    if (stop && !last) {
      if (s.root) std::fprintf(stderr, "recvae: stop requested: checkpoint written after epoch %d; exiting\n", epoch + 1);
      result.stopped_on_signal = true;
      return result;
    }
  }

  result.best_epoch = s.best_epoch;
  result.best_validation = s.best_validation;
  if (!s.best.empty()) {
    torch::NoGradGuard guard;
    auto params = s.model->parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(s.best[i]);
  }
  if (s.cfg.eval.test) result.test = evaluate(true);
  if (s.root && s.cfg.output.save_model) {
    const std::string path = log.path("best_model.pt"), tmp = path + ".tmp";
    torch::serialize::OutputArchive archive;
    s.model->module().save(archive);
    archive.save_to(tmp);
    std::filesystem::rename(tmp, path);
    // The same weights for readers outside libtorch (h5py, the HDF5 C API): data/README.md.
    write_model_export(log.path("model.h5"), *s.model, s.cfg.to_yaml(), SplitFile(s.cfg.data.path).read_item_ids());
  }

  JsonObject fin;
  fin.add("model", s.model->type()).add("best_epoch", result.best_epoch).add("epochs", candidates > 0 ? candidates : tc.epochs);
  if (!best_fit.empty()) fin.add("best_fit", best_fit);
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
  fin.add("seconds", seconds_since(run_start)).add("resumed", !checkpoint.empty());
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
