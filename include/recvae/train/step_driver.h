#pragma once
// Drives a StepModel (models/step_model.h): its parameter groups' flat gradient buffers and
// optimisers, and passes of world-size-invariant steps (Note [World-size invariance]).
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/dist/grad_sync.h"
#include "recvae/models/step_model.h"
#include "recvae/train/group_optimizer.h"
#include "recvae/train/overlapped_sync.h"
#include "recvae/train/row_adam.h"

namespace recvae {

struct Config;
struct TrainingData;

/// Where one rank's wall time in a pass went, summed over its steps (Note [Step breakdown]).
struct StepBreakdown {
  double compute = 0;    ///< forward and backward
  double comm = 0;       ///< inside gradient collectives (waiting there for a slower rank included)
  double optimizer = 0;  ///< penalty gradients and optimiser updates
  double other = 0;      ///< the rest: batch assembly, zeroing, loss checks, the stop agreement
  CommTally tally;       ///< what the gradient collectives moved
};

/// Statistics of one pass, summed over all ranks.
struct PassStats {
  std::int64_t steps = 0;                  ///< optimiser steps
  std::int64_t users = 0;                  ///< training users processed
  double loss = 0;                         ///< mean per-user loss over the pass
  double mll = 0;                          ///< mean per-user reconstruction log-likelihood
  double kl = 0;                           ///< mean per-user KL estimate
  double seconds = 0;                      ///< wall time
  std::int64_t allreduce_bytes = 0;        ///< gradient bytes (fp32) synchronised per step
  StepBreakdown time;                      ///< where the time went, mean over ranks, summed over the pass's steps
  std::int64_t optimizer_state_bytes = 0;  ///< optimiser state of the stepped groups held by one rank
  bool interrupted = false;                ///< stopped early on a stop request (stop_signal.h)
  std::int64_t next_step = 0;              ///< first step not done (== the pass's steps when complete)
  Figures figures;                         ///< StepModel::pass_summary of a completed pass
};

/// One parameter group's optimiser state gathered for a checkpoint: the whole group's moments
/// (whatever the sharding), every rank's rows for a per-user group.
struct GroupState {
  std::string name;                   ///< the group's name
  bool per_user = false;              ///< a per-user group (rows[0] holds its rows)
  std::array<torch::Tensor, 3> rows;  ///< per-user: rows, first and second moments (all users); else -, moments
  std::int64_t row_steps = 0;         ///< the group's update count
};

/// The optimisers of a StepModel and its passes on one rank.
class StepDriver {
 public:
  /// Binds the model's groups to flat gradient buffers and makes one optimiser per group.
  StepDriver(StepModel& model, const Config& config, TrainingData& data, Communicator& comm, torch::Device device);
  ~StepDriver();

  /// One pass over the training users as `spec` says, from step `first_step`; max_steps > 0 stops
  /// it early (benchmarks), otherwise train.max_steps_per_pass applies. Stops after the current
  /// step on an agreed stop request. Does not run the model's end-of-pass hook (end_pass does).
  PassStats train_pass(int epoch, const PassSpec& spec, std::int64_t max_steps = 0, std::int64_t first_step = 0);
  /// The model's end-of-pass hook on every rank, then Note [Snapshot check] when it asks.
  void end_pass(const PassSpec& spec);
  /// Optimiser steps taken so far in the run (the same on every rank).
  std::int64_t global_step() const { return global_step_; }

  /// Every group's optimiser state, per-user rows gathered from every rank (a collective).
  std::vector<GroupState> gather_state();
  /// Every group's name and kind, for a checkpoint to load into (no tensors).
  std::vector<GroupState> state_slots() const;
  /// Restores every group's optimiser from `groups` as a checkpoint filled them (this rank's
  /// rows and shard are cut out of the whole) and the global step.
  void restore_state(const std::vector<GroupState>& groups, std::int64_t global_step, const std::string& path);
  /// Makes every parameter's gradient a view of its group's buffer again (after Module::load).
  void rebind();

 private:
  void step_group(size_t g);
  void make_overlap();
  torch::Tensor gather_rows(const torch::Tensor& local) const;

  StepModel& model_;
  const Config& config_;
  TrainingData& data_;
  Communicator& comm_;
  torch::Device device_;
  std::vector<ParameterGroup> specs_;
  std::vector<GradGroup> groups_;
  SyncOptions sync_;
  std::vector<std::unique_ptr<GroupOptimizer>> adams_;  // replicated groups
  std::vector<std::unique_ptr<RowAdam>> row_adams_;     // per-user groups
  std::unique_ptr<OverlappedSync> overlap_;             // dist.bucket_mb > 0 on several ranks
  std::int64_t global_step_ = 0;
};

}  // namespace recvae
