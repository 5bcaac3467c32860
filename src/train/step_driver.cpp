#include "recvae/train/step_driver.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <torch/cuda.h>

#include "recvae/batch/batch_plan.h"
#include "recvae/batch/device_batch.h"
#include "recvae/dist/comm.h"
#include "recvae/train/replica_check.h"
#include "recvae/train/stop_agreement.h"
#include "recvae/train/training_data.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"
#include "recvae/util/progress.h"

namespace recvae {

namespace {

using Clock = std::chrono::steady_clock;

// Test hook: RECVAE_FAULT_RANK=r [RECVAE_FAULT_STEP=k] makes rank r fail at step k (default 0)
// of the first epoch, to test that one failing rank ends the whole job.
void fault_injection_point(int rank, int epoch, std::int64_t step) {
  static const char* fault_rank = std::getenv("RECVAE_FAULT_RANK");
  if (!fault_rank || epoch != 0 || std::atoi(fault_rank) != rank) return;
  const char* fault_step = std::getenv("RECVAE_FAULT_STEP");
  if (step == (fault_step ? std::atoll(fault_step) : 0))
    throw std::runtime_error("injected fault (RECVAE_FAULT_RANK) at step " + std::to_string(step + 1));
}

}  // namespace

StepDriver::StepDriver(StepModel& model, const Config& config, TrainingData& data, Communicator& comm,
                       torch::Device device)
    : model_(model), config_(config), data_(data), comm_(comm), device_(device) {
  sync_.sharded = config.dist.optimizer == "sharded";
  sync_.wire = config.dist.grad_dtype == "bf16" ? WireType::kBFloat16 : WireType::kFloat32;
  sync_.bucket_bytes = static_cast<std::int64_t>(config.dist.bucket_mb * (1 << 20));
  rebind();
  for (size_t i = 0; i < specs_.size(); ++i) {
    const ParameterGroup& g = specs_[i];
    if (g.replicated) {
      adams_.push_back(std::make_unique<GroupOptimizer>(groups_[i], g.lr > 0 ? g.lr : config.train.lr, sync_, comm));
      row_adams_.emplace_back();
    } else {
      if (g.params.size() != 1 || g.params[0].size(0) != data.range.size())
        throw std::logic_error("model " + model.type() + ": per-user group '" + g.name +
                               "' must be one tensor with a row per local training user");
      adams_.emplace_back();
      row_adams_.push_back(std::make_unique<RowAdam>(g.params[0], g.lr > 0 ? g.lr : config.train.lr));
    }
  }
  make_overlap();
}

StepDriver::~StepDriver() = default;

// Module::load replaces parameter data, so loading a checkpoint binds the gradients again.
void StepDriver::rebind() {
  overlap_.reset();
  specs_ = model_.parameter_groups();
  groups_.resize(specs_.size());
  for (size_t g = 0; g < specs_.size(); ++g)
    groups_[g].bind(specs_[g].params, device_, specs_[g].replicated && sync_.sharded ? comm_.size() : 1);
  if (adams_.size() == groups_.size()) make_overlap();  // not while the constructor binds first
}

// Note [Overlapped gradient sync]: only where there is a wire and buckets were asked for.
void StepDriver::make_overlap() {
  if (sync_.bucket_bytes <= 0 || comm_.size() == 1) return;
  if (comm_.backend() == "mpi" && !comm_.info().serialized)
    throw InputError(
        "dist.bucket_mb > 0 runs the gradient collectives on a thread of their own, which needs an MPI library "
        "that provides MPI_THREAD_SERIALIZED; this one does not (set dist.bucket_mb: 0)");
  std::vector<GradGroup*> groups;
  std::vector<GroupOptimizer*> optimizers;
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups.push_back(&groups_[g]);
    optimizers.push_back(adams_[g].get());
  }
  overlap_ = std::make_unique<OverlappedSync>(groups, optimizers, comm_);
}

void StepDriver::step_group(size_t g) {
  if (adams_[g])
    adams_[g]->update();
  else
    row_adams_[g]->step();
}

// Note [Step breakdown]
// ~~~~~~~~~~~~~~~~~~~~~
// Every step's wall time on a rank is cut at four points: after backward (compute: forward and
// backward of the model's loss), after the gradient collectives (comm: time inside them, which
// includes waiting for the slowest rank to arrive), after the penalties and optimiser updates
// (optimizer, with the sharded all-gather counted as comm), and the rest of the loop (other: batch
// assembly, zeroing the buffers, loss checks, the stop agreement, progress lines). On a GPU the
// device is synchronised at each cut, so the figures are the device's, at the price of the
// overlap that a free-running stream would give. The four add up to the pass's loop time; each
// is reported as the mean over ranks (recvae_bench prints it per step, metrics.jsonl per pass).
// With dist.bucket_mb > 0 the reduction runs during backward (Note [Overlapped gradient sync]),
// so comm is only the wait after backward for collectives still in flight: the exposed part.

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

PassStats StepDriver::train_pass(int epoch, const PassSpec& spec, std::int64_t max_steps, std::int64_t first_step) {
  const auto t0 = Clock::now();
  const int pass = spec.pass;
  const bool root = comm_.rank() == 0;
  // A measuring pass (no groups) has nothing to resume: its sums start again from step 0.
  const bool measuring = spec.groups.empty();
  if (measuring) first_step = 0;
  std::vector<bool> stepped(groups_.size(), false);
  for (int g : spec.groups) stepped.at(static_cast<size_t>(g)) = true;
  for (size_t g = 0; g < groups_.size(); ++g)
    if (!stepped[g]) groups_[g].set_requires_grad(false);
  for (size_t g = 0; g < groups_.size(); ++g)
    if (stepped[g]) {
      groups_[g].attach();  // Note [Shared parameter groups]
      groups_[g].set_requires_grad(true);
    }

  // Note [Streams of a second training stage]
  const std::uint64_t seed = stream_seed(config_.train.seed, spec.noise_stream);
  BatchPlan plan(pass_permutation(data_.train_users, seed, epoch, pass), config_.train.batch_size, data_.range.lo,
                 data_.range.hi);
  std::int64_t steps = plan.num_batches();
  if (max_steps <= 0) max_steps = config_.train.max_steps_per_pass;
  if (max_steps > 0) steps = std::min(steps, max_steps);

  const BatchNoise noise_base{seed, epoch, pass, spec.dropout, model_.noise_dim()};
  // Loss sums stay on the device and are read every `check_every` steps (every step on the CPU,
  // where reading is free), so a GPU step never waits for the host.
  const std::int64_t check_every = device_.is_cuda() ? 25 : 1;
  auto acc = torch::zeros({3}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  torch::Tensor model_sums;  // the model's LossTerms::stats, summed over the pass
  double users = 0;
  std::int64_t unchecked_from = first_step;
  auto check_finite = [&](std::int64_t upto) {
    const double v = acc[0].item<double>();
    if (!std::isfinite(v)) {
      const std::string where = unchecked_from + 1 == upto
                                    ? "step " + std::to_string(upto)
                                    : "steps " + std::to_string(unchecked_from + 1) + "-" + std::to_string(upto);
      throw std::runtime_error("non-finite loss (" + std::to_string(v) + ") at epoch " + std::to_string(epoch + 1) +
                               ", pass " + std::to_string(pass + 1) + ", " + where);
    }
    unchecked_from = upto;
  };
  auto last_print = Clock::now();
  PassStats st;
  st.next_step = steps;
  StepBreakdown& bd = st.time;
  const bool cuda = device_.is_cuda();
  // Note [Step breakdown]
  auto cut = [&](Clock::time_point& mark) {
    if (cuda) torch::cuda::synchronize();
    const auto now = Clock::now();
    const double s = std::chrono::duration<double>(now - mark).count();
    mark = now;
    return s;
  };
  auto mark = Clock::now();
  for (std::int64_t b = first_step; b < steps; ++b) {
    const LocalBatch lb = plan.batch(b);
    for (size_t g = 0; g < groups_.size(); ++g)
      if (stepped[g]) groups_[g].flat.zero_();
    if (overlap_ && !measuring) overlap_->begin(stepped);  // Note [Overlapped gradient sync]
    const StepContext ctx{static_cast<double>(lb.global_size), global_step_, &spec};
    fault_injection_point(comm_.rank(), epoch, b);
    if (!lb.global_rows.empty()) {
      SparseBatch batch = data_.train_device
                              ? assemble_batch_on_device(*data_.train_device, lb.global_rows, &noise_base)
                              : assemble_batch(data_.train, data_.range.lo, lb.global_rows, &noise_base, device_);
      bd.other += cut(mark);
      LossTerms terms;
      if (measuring) {
        torch::NoGradGuard no_grad;
        terms = model_.loss(batch, ctx);
      } else {
        terms = model_.loss(batch, ctx);
        terms.loss.backward();
      }
      bd.compute += cut(mark);
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
      bd.other += cut(mark);
      if (overlap_) {
        overlap_->finish(bd.tally);
      } else {
        for (size_t g = 0; g < groups_.size(); ++g)
          if (stepped[g] && adams_[g]) adams_[g]->reduce(bd.tally);
      }
      bd.comm += cut(mark);
      torch::Tensor penalty = model_.regularizer(ctx);  // Note [Regularisers after the all-reduce]
      if (penalty.defined() && penalty.requires_grad()) {
        for (size_t g = 0; g < groups_.size(); ++g)
          if (stepped[g] && adams_[g]) adams_[g]->before_penalty();
        penalty.backward();
        for (size_t g = 0; g < groups_.size(); ++g)
          if (stepped[g] && adams_[g]) adams_[g]->after_penalty();
      }
      for (size_t g = 0; g < groups_.size(); ++g)
        if (stepped[g]) step_group(g);
      bd.optimizer += cut(mark);
      for (size_t g = 0; g < groups_.size(); ++g)
        if (stepped[g] && adams_[g]) adams_[g]->gather(bd.tally);
      bd.comm += cut(mark);
      ++global_step_;
    }
    if (root && config_.output.progress_seconds > 0 && seconds_since(last_print) >= config_.output.progress_seconds) {
      std::fprintf(stderr, "    step %lld/%lld (%.1f s)\n", static_cast<long long>(b + 1),
                   static_cast<long long>(steps), seconds_since(t0));
      last_print = Clock::now();
    }
    if (stop_agreed(comm_)) {
      st.interrupted = true;
      st.next_step = b + 1;
      break;
    }
  }
  bd.other += cut(mark);
  for (auto& g : groups_) g.set_requires_grad(true);
  if (unchecked_from < st.next_step) check_finite(st.next_step);
  // The breakdown's times, mean over ranks (the bytes are the same on every rank).
  double times[4] = {bd.compute, bd.comm, bd.optimizer, bd.other};
  comm_.allreduce_sum_host(times, 4);
  bd.compute = times[0] / comm_.size();
  bd.comm = times[1] / comm_.size();
  bd.optimizer = times[2] / comm_.size();
  bd.other = times[3] / comm_.size();

  double sums[4];
  auto host = acc.to(torch::kCPU);
  for (int i = 0; i < 3; ++i) sums[i] = host[i].item<double>();
  sums[3] = users;
  comm_.allreduce_sum_host(sums, 4);
  // The model's sums: a rank that met no user has none, so the length is agreed first.
  std::vector<double> model_totals;
  if (model_sums.defined()) {
    auto host_sums = model_sums.to(torch::kCPU).contiguous();
    model_totals.assign(host_sums.data_ptr<double>(), host_sums.data_ptr<double>() + host_sums.numel());
  }
  std::int64_t width = static_cast<std::int64_t>(model_totals.size());
  comm_.allreduce_max_host(&width, 1);
  model_totals.resize(static_cast<size_t>(width), 0.0);
  if (width > 0) comm_.allreduce_sum_host(model_totals.data(), model_totals.size());
  if (!st.interrupted) st.figures = model_.pass_summary(spec, model_totals);
  st.steps = st.next_step - std::min(first_step, st.next_step);
  st.users = static_cast<std::int64_t>(sums[3] + 0.5);
  if (st.users > 0) {
    st.loss = sums[0] / sums[3];
    st.mll = sums[1] / sums[3];
    st.kl = sums[2] / sums[3];
  }
  st.seconds = seconds_since(t0);
  for (size_t g = 0; g < groups_.size(); ++g)
    if (stepped[g] && adams_[g]) {
      st.allreduce_bytes += groups_[g].bytes();
      st.optimizer_state_bytes += adams_[g]->state_bytes();
    }
  return st;
}

void StepDriver::end_pass(const PassSpec& spec) {
  if (model_.after_pass(spec)) check_replicas_in_sync(model_, comm_);
}

// The full table of a per-user tensor: every rank places its rows, one sum all-reduce joins them.
torch::Tensor StepDriver::gather_rows(const torch::Tensor& local) const {
  torch::NoGradGuard guard;
  std::vector<std::int64_t> sizes = local.sizes().vec();
  sizes[0] = data_.train_users;
  auto full = torch::zeros(sizes, local.options());
  full.narrow(0, data_.range.lo, local.size(0)).copy_(local);
  allreduce_tensor(full, comm_);
  return full;
}

std::vector<GroupState> StepDriver::state_slots() const {
  std::vector<GroupState> out(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    out[g].name = specs_[g].name;
    out[g].per_user = !adams_[g];
  }
  return out;
}

std::vector<GroupState> StepDriver::gather_state() {
  std::vector<GroupState> out = state_slots();
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (adams_[g]) {
      auto moments = adams_[g]->full_moments();
      out[g].rows = {torch::Tensor(), moments[0], moments[1]};
      out[g].row_steps = adams_[g]->steps();
    } else {
      const RowAdam& r = *row_adams_[g];
      out[g].rows = {gather_rows(r.param), gather_rows(r.exp_avg), gather_rows(r.exp_avg_sq)};
      out[g].row_steps = r.steps;
    }
  }
  return out;
}

void StepDriver::restore_state(const std::vector<GroupState>& saved, std::int64_t global_step,
                               const std::string& path) {
  for (size_t g = 0; g < groups_.size(); ++g) {
    const GroupState& s = saved.at(g);
    if (adams_[g]) {
      if (s.rows[1].numel() != groups_[g].numel)
        throw InputError(path + ": checkpoint has " + std::to_string(s.rows[1].numel()) + " optimiser moments of '" +
                         specs_[g].name + "', the model has " + std::to_string(groups_[g].numel) + " parameters there");
      adams_[g]->load_moments(s.rows[1].to(device_), s.rows[2].to(device_), s.row_steps);
      continue;
    }
    // Per-user rows: cut this rank's range out of the gathered table (any world size).
    if (s.rows[0].size(0) != data_.train_users)
      throw InputError(path + ": checkpoint has " + std::to_string(s.rows[0].size(0)) + " rows of '" + specs_[g].name +
                       "', the data set has " + std::to_string(data_.train_users) + " training users");
    RowAdam& opt = *row_adams_[g];
    const std::int64_t n = data_.range.size();
    torch::NoGradGuard guard;
    opt.param.copy_(s.rows[0].narrow(0, data_.range.lo, n));
    opt.exp_avg.copy_(s.rows[1].narrow(0, data_.range.lo, n));
    opt.exp_avg_sq.copy_(s.rows[2].narrow(0, data_.range.lo, n));
    opt.steps = s.row_steps;
  }
  global_step_ = global_step;
}

}  // namespace recvae
