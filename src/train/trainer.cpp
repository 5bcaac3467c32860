#include "recvae/train/trainer.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <thread>

#include "recvae/data/h5_dataset.h"
#include "recvae/data/sharding.h"
#include "recvae/dist/device_select.h"
#include "recvae/dist/grad_sync.h"
#include "recvae/eval/evaluator.h"
#include "recvae/eval/sharded_top_k.h"
#include "recvae/models/column_shards.h"
#include "recvae/export/model_export.h"
#include "recvae/models/registry.h"
#include "recvae/train/best_epoch.h"
#include "recvae/train/checkpoint.h"
#include "recvae/train/data_fingerprint.h"
#include "recvae/train/epoch_report.h"
#include "recvae/train/replica_check.h"
#include "recvae/train/run_log.h"
#include "recvae/train/stop_agreement.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/training_data.h"
#include "recvae/util/cpu_affinity.h"
#include "recvae/util/error.h"
#include "recvae/util/progress.h"
#include "recvae/util/json.h"
#include "recvae/util/run_dir.h"

namespace recvae {

namespace {

using Clock = std::chrono::steady_clock;

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

// Overloaded lambdas for AnyModel::visit.
template <class... F>
struct Styles : F... {
  using F::operator()...;
};
template <class... F>
Styles(F...) -> Styles<F...>;

}  // namespace

// Note [Busy cores]
// ~~~~~~~~~~~~~~~~~
// libtorch's and OpenBLAS's threads are OpenMP threads, and GNU OpenMP's threads spin for a
// while at the end of every parallel region before they sleep. When one of a rank's threads
// shares its core with another busy process, the others spin while it waits for its time slice,
// and a step takes an order of magnitude longer (a RecVAE encoder pass on ML-1M: 20 s beside a
// one-core process, 1.3 s without). So with train.threads automatic (0) every rank of a node
// samples /proc/stat for 0.2 s at the same moment (after a barrier, so that the job's own ranks
// sit idle), counts the CPUs of its mask that other processes keep busy, and takes no more
// threads than the free CPUs give each of the node's ranks, saying so. An explicit train.threads
// is kept (with a warning when it exceeds the free CPUs); OMP_WAIT_POLICY=passive in the
// environment stops the spinning instead, at some cost on free cores (docs/performance.md).

namespace {

int threads_beside_busy_cores(int wanted, int cpus, Communicator& comm) {
  comm.barrier();
  const int busy = busy_cpus(0.2);
  const int local = std::max(1, comm.info().local_size);
  const int fitting = std::max(1, (cpus - busy) / local);
  if (fitting >= wanted) return wanted;
  if (comm.rank() == 0)
    std::fprintf(stderr,
                 "recvae: warning: %d of the %d CPUs this rank may use are busy with other processes: %d thread(s) "
                 "per rank instead of %d (set train.threads to choose; docs/performance.md, \"A busy node\")\n",
                 busy, cpus, fitting, wanted);
  return fitting;
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
  TrainingData data;
  std::unique_ptr<AnyModel> model;
  Model* core = nullptr;
  std::unique_ptr<StepDriver> steps;     // a step model's driver
  CandidateModel* candidates = nullptr;  // a candidate model (checkpoints hold its fit progress)
  BestEpoch best;
  RunResult result;
  int epochs_run = -1;  // epochs trained when an epoch-style run finishes (fewer on train.patience)

  Impl(const Config& c, Communicator& cm) : cfg(c), comm(cm) {}

  FitContext fit_context(bool may_stop) {
    return FitContext{data.train, data.range.lo, comm, threads,
                      may_stop ? std::function<bool()>([] { return stop_requested(); }) : std::function<bool()>()};
  }
  MetricSums evaluate(bool test_split) {
    const HeldOutShard& shard = test_split ? data.test : data.validation;
    if (ColumnShardedScores* sharded = core->column_shards())
      return reduce_metrics(evaluate_column_sharded(*sharded, shard, cfg.eval.batch_size, comm, threads), comm);
    return reduce_metrics(evaluate_model_local(*core, shard, cfg.eval.batch_size, device, threads), comm);
  }
  CheckpointContents contents() {
    CheckpointContents c;
    c.model = core;
    c.data_fingerprint = data.fingerprint;
    c.data_path = cfg.data.path;
    c.best = &best;
    return c;
  }
  void save_checkpoint(const TrainingPosition& next);
  TrainingPosition load_checkpoint(const std::string& path);
  // The drivers of the three styles; false: stopped on a signal after a checkpoint.
  bool run_candidates(CandidateModel& m, const TrainingPosition& pos, EpochReport& report, std::string& best_fit);
  bool run_epochs(const TrainingPosition& pos, EpochReport& report,
                  const std::function<bool(int, const TrainingPosition&, EpochFigures&)>& train_epoch);
  bool train_step_epoch(StepModel& m, int epoch, const TrainingPosition& pos, EpochReport& report, EpochFigures& e);
  void finish(RunLog& log, int epochs, const std::string& best_fit, bool resumed, Clock::time_point start);
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
  if (config.train.threads == 0 && s.threads > 1) s.threads = threads_beside_busy_cores(s.threads, cpus, comm);
  if (s.root && s.threads > cpus)
    std::fprintf(stderr,
                 "recvae: warning: train.threads %d, but rank 0 may run on %d CPU(s) only (its affinity mask), so "
                 "its threads share cores and run slower than one; under mpirun add --bind-to none or "
                 "--map-by slot:PE=%d, or lower train.threads\n",
                 s.threads, cpus, s.threads);
  torch::set_num_threads(s.threads);
  s.device = pick_device(config.dist, proc);

  // Each rank reads only its own rows (balanced by non-zeros) of every split.
  TrainingData& d = s.data;
  SplitFile file(config.data.path);
  d.items = file.num_items();
  d.train_users = file.num_rows(split::kTrain);
  d.range = shard_of(file, split::kTrain, proc.rank, proc.size);
  d.train = file.read_rows(split::kTrain, d.range.lo, d.range.hi);
  d.validation = load_held_out(file, split::kValidationFoldIn, split::kValidationHoldout, proc.rank, proc.size);
  d.test = load_held_out(file, split::kTestFoldIn, split::kTestHoldout, proc.rank, proc.size);
  if (d.train_users == 0) throw InputError(config.data.path + ": the train split has no users");
  d.fingerprint = data_fingerprint(file);
  if (config.dist.device_data == "on" || (config.dist.device_data == "auto" && s.device.is_cuda())) {
    d.train_device = std::make_unique<DeviceShard>(DeviceShard::upload(d.train, d.range.lo, s.device));
    d.validation.upload(s.device);
    d.test.upload(s.device);
  }
  // "high" lets CUDA matmuls use TF32; the string form of this setting exists in 1.13 and 2.x.
  if (s.device.is_cuda())
    at::globalContext().setFloat32MatmulPrecision(config.train.precision == "tf32" ? "high" : "highest");

  // Ranks started with different configs or data files would train different models while
  // exchanging gradients: compare a hash of both across ranks before anything else.
  std::int64_t h[2];
  h[0] = h[1] = static_cast<std::int64_t>(fnv1a64(config.to_yaml() + "\n" + d.fingerprint));
  comm.allreduce_max_host(&h[0], 1);
  comm.allreduce_min_host(&h[1], 1);
  if (h[0] != h[1])
    throw InputError("ranks were started with different configs or data files (config/data hash differs across ranks)");

  // Popularity = number of training users per item, summed over the ranks' shards.
  std::vector<double> counts(static_cast<size_t>(d.items), 0.0);
  for (std::int32_t item : d.train.indices) counts[item] += 1.0;
  comm.allreduce_sum_host(counts.data(), counts.size());
  d.popularity.assign(counts.begin(), counts.end());

  torch::manual_seed(config.train.seed);
  ModelContext mctx;
  mctx.items = d.items;
  mctx.train_users = d.train_users;
  mctx.local_users_lo = d.range.lo;
  mctx.local_users_hi = d.range.hi;
  mctx.device = s.device;
  mctx.data = &file;
  mctx.rank = proc.rank;
  mctx.world_size = proc.size;
  mctx.local_ranks = proc.local_size;
  s.model = std::make_unique<AnyModel>(make_model(config, mctx));
  s.core = &s.model->core();
  s.core->module().train();
  for (auto& p : s.core->parameters()) broadcast_tensor(p, comm);  // identical start on every rank
  s.model->visit(Styles{
      [&](StepModel& m) { s.steps = std::make_unique<StepDriver>(m, s.cfg, s.data, comm, s.device); },
      [&](CandidateModel& m) { s.candidates = &m; },
      [&](EpochSolvedModel&) {},
  });
}

Trainer::~Trainer() = default;

Model& Trainer::model() { return *impl_->core; }
const AnyModel& Trainer::any_model() const { return *impl_->model; }
std::int64_t Trainer::num_items() const { return impl_->data.items; }
std::int64_t Trainer::global_step() const { return impl_->steps ? impl_->steps->global_step() : 0; }
torch::Device Trainer::device() const { return impl_->device; }
std::int64_t Trainer::num_train_users() const { return impl_->data.train_users; }

PassStats Trainer::train_pass(int epoch, const PassSpec& spec, std::int64_t max_steps, std::int64_t first_step) {
  if (!impl_->steps) throw std::logic_error("model.type " + impl_->core->type() + " is not trained by passes");
  return impl_->steps->train_pass(epoch, spec, max_steps, first_step);
}

void Trainer::end_pass(const PassSpec& spec) {
  if (!impl_->steps) throw std::logic_error("model.type " + impl_->core->type() + " is not trained by passes");
  impl_->steps->end_pass(spec);
}

std::string Trainer::fit(int candidate) {
  Impl& s = *impl_;
  if (!s.candidates) throw std::logic_error("model.type " + s.core->type() + " is not fitted as candidates");
  return s.candidates->fit(candidate, s.fit_context(true));
}

std::vector<PassSpec> Trainer::schedule(int epoch) {
  return impl_->model->visit(Styles{
      [&](StepModel& m) { return m.epoch_schedule(epoch); },
      [](CandidateModel&) { return std::vector<PassSpec>(); },
      [](EpochSolvedModel&) { return std::vector<PassSpec>(); },
  });
}

void Trainer::check_replicas_in_sync() { recvae::check_replicas_in_sync(*impl_->core, impl_->comm); }

MetricSums Trainer::evaluate(bool test_split) { return impl_->evaluate(test_split); }

MetricSums Trainer::evaluate_popularity(bool test_split) {
  Impl& s = *impl_;
  return reduce_metrics(
      evaluate_scores_local(s.data.popularity, test_split ? s.data.test : s.data.validation, s.threads), s.comm);
}

void Trainer::Impl::save_checkpoint(const TrainingPosition& next) {
  CheckpointContents c = contents();
  c.position = next;
  if (steps) {
    c.groups = steps->gather_state();  // every rank joins the per-user gathers; only rank 0 writes
    c.global_step = steps->global_step();
  }
  if (candidates) c.fit_progress = candidates->fit_progress();  // Note [Resumable fits]
  if (!root) return;
  c.config_yaml = cfg.to_yaml();
  char name[64];
  std::snprintf(name, sizeof name, "epoch-%04d-pass-%02d-step-%06lld", next.epoch, next.schedule_index,
                static_cast<long long>(next.step));
  CheckpointStore(cfg.output.dir, cfg.output.checkpoint_keep).save(name, [&](torch::serialize::OutputArchive& a) {
    write_checkpoint(a, c);
  });
}

TrainingPosition Trainer::Impl::load_checkpoint(const std::string& path) {
  CheckpointContents c = contents();
  if (steps) c.groups = steps->state_slots();
  CheckpointStore::load(path, device, [&](torch::serialize::InputArchive& a) { read_checkpoint(a, c, path); });
  if (steps) {
    steps->restore_state(c.groups, c.global_step, path);
    steps->rebind();  // Module::load replaced the parameters: the gradients must be views of the buffers again
  }
  if (candidates && c.fit_progress.defined()) candidates->restore_fit_progress(c.fit_progress);
  return c.position;
}

// Note [Closed-form models] (models/model.cpp): every candidate is fitted and evaluated as an
// epoch would be; the model keeps only its latest fit, so the best one is fitted again at the
// end. A resumed run starts at the candidate it stopped in or before (Note [Resumable fits]).
bool Trainer::Impl::run_candidates(CandidateModel& m, const TrainingPosition& pos, EpochReport& report,
                                   std::string& best_fit) {
  const int count = m.fit_candidates();
  int fitted = -1;  // the candidate whose fit the model holds
  // A fit stopped part-way: checkpoint what it did at the candidate's position, step 1.
  auto stopped_inside = [&](int i) {
    if (!m.fit_progress().defined()) return false;
    save_checkpoint({i, 0, 1});
    if (root)
      std::fprintf(stderr, "recvae: stop requested: checkpoint written inside fit %d (%s); exiting\n", i + 1,
                   m.fit_name(i).c_str());
    return true;
  };
  for (int i = pos.epoch; i < count; ++i) {
    const auto t0 = Clock::now();
    FitFigures f;
    f.candidate = i + 1;
    f.candidates = count;
    f.name = m.fit(i, fit_context(true));
    if (stopped_inside(i)) return false;
    fitted = i;
    f.fit_seconds = seconds_since(t0);
    const auto te = Clock::now();
    f.validation = evaluate(false);
    f.eval_seconds = seconds_since(te);
    f.best = best.offer(i + 1, f.validation);
    f.peak_memory_gb = peak_host_memory_gb();
    comm.allreduce_sum_host(&f.peak_memory_gb, 1);
    report.fit(f);
    if (i + 1 == count) break;
    if (stop_agreed(comm)) {
      m.release_fit();
      save_checkpoint({i + 1, 0, 0});
      if (root)
        std::fprintf(stderr, "recvae: stop requested: checkpoint written after fit %d of %d; exiting\n", i + 1, count);
      return false;
    }
  }
  best_fit = m.fit_name(best.epoch() - 1);
  if (fitted != best.epoch() - 1) {
    m.fit(best.epoch() - 1, fit_context(true));
    if (stopped_inside(count)) return false;
  }
  return true;
}

bool Trainer::Impl::train_step_epoch(StepModel& m, int epoch, const TrainingPosition& pos, EpochReport& report,
                                     EpochFigures& e) {
  const std::vector<PassSpec> schedule = m.epoch_schedule(epoch);
  const int first_index = epoch == pos.epoch ? pos.schedule_index : 0;
  // An epoch entered at its start (also on resume from an end-of-epoch checkpoint) runs the
  // model's epoch hook; one re-entered in the middle had it before the checkpoint.
  if (first_index == 0 && (epoch != pos.epoch || pos.step == 0)) {
    const auto th = Clock::now();
    if (m.before_epoch(epoch, fit_context(false))) recvae::check_replicas_in_sync(m, comm);
    e.hook_seconds = seconds_since(th);
  }
  for (int i = first_index; i < static_cast<int>(schedule.size()); ++i) {
    const PassSpec& spec = schedule[i];
    const std::int64_t first_step = epoch == pos.epoch && i == pos.schedule_index ? pos.step : 0;
    const PassStats st = steps->train_pass(epoch, spec, 0, first_step);
    PhaseTotal& ph = e.phases[spec.phase];
    ph.passes += 1;
    ph.sum.loss += st.loss;
    ph.sum.mll += st.mll;
    ph.sum.kl += st.kl;
    ph.sum.seconds += st.seconds;
    ph.sum.steps += st.steps;
    ph.sum.figures = st.figures;  // a phase's figures: those of its last pass
    accumulate(ph.sum.time, st.time);
    ph.sum.optimizer_state_bytes = st.optimizer_state_bytes;
    e.train_seconds += st.seconds;
    e.train_users += st.users;
    e.allreduce_bytes_per_step = std::max(e.allreduce_bytes_per_step, st.allreduce_bytes);
    report.pass(epoch, spec.phase, st);
    if (st.interrupted) {
      // The refresh after this pass (if any) runs on resume, which re-enters this pass at its end.
      save_checkpoint({epoch, i, st.next_step});
      if (root)
        std::fprintf(stderr, "recvae: stop requested: checkpoint written at epoch %d, pass %d, step %lld; exiting\n",
                     epoch + 1, i + 1, static_cast<long long>(st.next_step));
      return false;
    }
    steps->end_pass(spec);
  }
  return true;
}

// Note [Patience]
// ~~~
// With train.patience K > 0 a run stops once validation NDCG@100 has not improved for K epochs
// (a checkpoint is written there); the test still uses the best epoch. The rule looks only at
// the epochs done and the best one, both in the checkpoint, so a resumed run that had stopped
// stops again at once, and one resumed with a larger train.epochs (a sweep promoting a trial to
// the next rung) goes on only while patience lasts.
// A model may name a number S of leading epochs that patience passes over (Model::patience_start):
// RaCT's actor and critic phases, whose validation figures say nothing of its actor-critic
// training (during the critic's, they do not change at all, so a patience counted there would end
// every run before its first actor-critic epoch). The K epochs then count from the best epoch or S,
// whichever is later.
bool Trainer::Impl::run_epochs(const TrainingPosition& pos, EpochReport& report,
                               const std::function<bool(int, const TrainingPosition&, EpochFigures&)>& train_epoch) {
  const int epochs = cfg.train.epochs;
  // Note [Patience].
  auto patience_spent = [&](int done) {
    const int from = std::max(best.epoch(), core->patience_start());
    return cfg.train.patience > 0 && best.epoch() > 0 && done - from >= cfg.train.patience;
  };
  if (patience_spent(pos.epoch) && pos.epoch < epochs) {
    epochs_run = pos.epoch;
    return true;
  }
  for (int epoch = pos.epoch; epoch < epochs; ++epoch) {
    EpochFigures e;
    e.epoch = epoch + 1;
    if (!train_epoch(epoch, pos, e)) return false;
    const auto te = Clock::now();
    e.validation = evaluate(false);
    e.eval_seconds = seconds_since(te);
    e.best = best.offer(epoch + 1, e.validation);
    if (e.best) best.keep(core->parameters());
    report.epoch(e);
    const bool last = epoch + 1 == epochs;
    const bool due = cfg.output.checkpoint_every > 0 && (epoch + 1) % cfg.output.checkpoint_every == 0;
    const bool stop = stop_agreed(comm);
    const bool patient = !last && patience_spent(epoch + 1);
    if (due || last || stop || patient) save_checkpoint({epoch + 1, 0, 0});
    if (patient) {
      const int start = core->patience_start();
      const std::string counted = start > best.epoch() ? " since epoch " + std::to_string(start) + " (" + core->type() +
                                                             "'s earlier epochs do not count)"
                                                       : "";
      if (root)
        std::fprintf(stderr,
                     "recvae: no better validation NDCG@100 for %d epoch(s)%s (best: epoch %d); stopping after epoch "
                     "%d of %d (train.patience)\n",
                     epoch + 1 - std::max(best.epoch(), start), counted.c_str(), best.epoch(), epoch + 1, epochs);
      epochs_run = epoch + 1;
      return true;
    }
    if (stop && !last) {
      if (root) std::fprintf(stderr, "recvae: stop requested: checkpoint written after epoch %d; exiting\n", epoch + 1);
      return false;
    }
  }
  epochs_run = epochs;
  return true;
}

void Trainer::Impl::finish(RunLog& log, int epochs, const std::string& best_fit, bool resumed,
                           Clock::time_point start) {
  result.best_epoch = best.epoch();
  result.best_validation = best.validation();
  best.restore_into(core->parameters());
  if (cfg.eval.test) result.test = evaluate(true);
  const RunDir run(cfg.output.dir);
  if (root && cfg.output.save_model) {
    const std::string path = run.best_model(), tmp = path + ".tmp";
    torch::serialize::OutputArchive archive;
    core->module().save(archive);
    archive.save_to(tmp);
    std::filesystem::rename(tmp, path);
  }
  // The same weights for readers outside libtorch (h5py, the HDF5 C API): data/README.md. Weights
  // split over the ranks reach the file only there (Note [Distributed EASE]).
  if (cfg.output.save_model && core->column_shards() != nullptr)
    write_model_export_sharded(run.model_export(), *core, cfg.to_yaml(), SplitFile(cfg.data.path).read_item_ids(),
                               comm);
  else if (root && cfg.output.save_model)
    write_model_export(run.model_export(), *core, cfg.to_yaml(), SplitFile(cfg.data.path).read_item_ids());
  JsonObject fin;
  fin.add("model", core->type()).add("best_epoch", result.best_epoch).add("epochs", epochs);
  if (epochs_run >= 0) fin.add("epochs_run", epochs_run);
  fin.add("stopped_early", epochs_run >= 0 && epochs_run < epochs);
  if (!best_fit.empty()) fin.add("best_fit", best_fit);
  fin.add("ndcg@100", result.test.mean_ndcg100())
      .add("recall@20", result.test.mean_recall20())
      .add("recall@50", result.test.mean_recall50())
      .add("test_users", result.test.users);
  fin.add("validation", metrics_json(result.best_validation));
  if (cfg.eval.popularity_baseline) {
    fin.add("popularity", metrics_json(result.popularity_test));
    fin.add("popularity_validation", metrics_json(result.popularity_validation));
  }
  fin.add("world_size", comm.size()).add("backend", comm.backend()).add("device", device.str());
  fin.add("seconds", seconds_since(start)).add("resumed", resumed);
  log.write_final(fin);
  if (root)
    std::fprintf(stderr,
                 "best epoch %d: test ndcg@100 %.4f recall@20 %.4f recall@50 %.4f (popularity %.4f / %.4f / %.4f); "
                 "%s\n",
                 result.best_epoch, result.test.mean_ndcg100(), result.test.mean_recall20(),
                 result.test.mean_recall50(), result.popularity_test.mean_ndcg100(),
                 result.popularity_test.mean_recall20(), result.popularity_test.mean_recall50(),
                 run.final_json().c_str());
}

RunResult Trainer::run(bool resume) {
  Impl& s = *impl_;
  const auto run_start = Clock::now();
  const CheckpointStore store(s.cfg.output.dir, s.cfg.output.checkpoint_keep);

  // Every rank reads the same checkpoint (a shared file system), so all restore the same state.
  std::string checkpoint;
  if (resume || s.cfg.output.auto_resume) {
    checkpoint = store.latest();
    if (checkpoint.empty() && resume)
      throw InputError("--resume: no checkpoint in " + RunDir(s.cfg.output.dir).checkpoints());
  }
  TrainingPosition pos;
  if (!checkpoint.empty()) pos = s.load_checkpoint(checkpoint);
  check_replicas_in_sync();

  RunLog log(s.cfg.output.dir, s.root, !checkpoint.empty(), pos.epoch);
  log.write_config(s.cfg.to_yaml());
  const int epochs = s.candidates ? s.candidates->fit_candidates() : s.cfg.train.epochs;
  if (s.root) {
    std::fprintf(
        stderr,
        "recvae: model %s; %lld train users, %lld items; %d rank(s), backend %s, device %s, %d thread(s) per rank\n",
        s.core->type().c_str(), static_cast<long long>(s.data.train_users), static_cast<long long>(s.data.items),
        s.comm.size(), s.comm.backend().c_str(), s.device.str().c_str(), s.threads);
    for (const auto& note : s.cfg.notes) std::fprintf(stderr, "recvae: %s\n", note.c_str());
    if (!checkpoint.empty() && s.candidates) {
      const bool in_refit = pos.epoch >= epochs;  // stopped while fitting the best again
      std::fprintf(stderr, "recvae: resumed from %s at fit %d of %d%s%s\n", checkpoint.c_str(),
                   in_refit ? s.best.epoch() : pos.epoch + 1, epochs, in_refit ? " (the best, fitted again)" : "",
                   s.candidates->fit_progress().defined() ? ", part-way (Note [Resumable fits])" : "");
    } else if (!checkpoint.empty()) {
      std::fprintf(stderr, "recvae: resumed from %s at epoch %d, pass %d, step %lld\n", checkpoint.c_str(),
                   pos.epoch + 1, pos.schedule_index + 1, static_cast<long long>(pos.step));
    }
  }

  s.result = RunResult();
  if (s.cfg.eval.popularity_baseline) {
    s.result.popularity_validation = evaluate_popularity(false);
    if (s.cfg.eval.test) s.result.popularity_test = evaluate_popularity(true);
    if (s.root)
      std::fprintf(stderr, "popularity baseline: validation ndcg@100 %.4f, test ndcg@100 %.4f\n",
                   s.result.popularity_validation.mean_ndcg100(), s.result.popularity_test.mean_ndcg100());
  }

  EpochReport report(log, s.root, epochs, s.comm.size());
  std::string best_fit;
  const bool finished = s.model->visit(Styles{
      [&](CandidateModel& m) { return s.run_candidates(m, pos, report, best_fit); },
      [&](StepModel& m) {
        return s.run_epochs(pos, report, [&](int epoch, const TrainingPosition& p, EpochFigures& e) {
          return s.train_step_epoch(m, epoch, p, report, e);
        });
      },
      [&](EpochSolvedModel& m) {
        return s.run_epochs(pos, report, [&](int epoch, const TrainingPosition&, EpochFigures& e) {
          const auto t0 = Clock::now();
          e.model = m.solve_epoch(epoch, s.fit_context(false));
          recvae::check_replicas_in_sync(m, s.comm);
          e.train_seconds = seconds_since(t0);
          e.train_users = s.data.train_users;
          return true;
        });
      },
  });
  if (!finished) {
    s.result.stopped_on_signal = true;
    return s.result;
  }
  s.finish(log, epochs, best_fit, !checkpoint.empty(), run_start);
  return s.result;
}

}  // namespace recvae
