#pragma once
// The training run: data shards, the model's parameter groups and optimisers, passes, gradient
// sync, evaluation, checkpoints and the run directory. Talks to a Communicator and a Model only
// (models/model.h); it names no particular model.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/util/config.h"
#include "recvae/eval/metrics.h"
#include "recvae/models/model.h"

namespace recvae {

/// Statistics of one pass, summed over all ranks.
struct PassStats {
  std::int64_t steps = 0;            ///< optimiser steps
  std::int64_t users = 0;            ///< training users processed
  double loss = 0;                   ///< mean per-user loss over the pass
  double mll = 0;                    ///< mean per-user reconstruction log-likelihood
  double kl = 0;                     ///< mean per-user KL estimate
  double seconds = 0;                ///< wall time
  std::int64_t allreduce_bytes = 0;  ///< bytes all-reduced per step
  bool interrupted = false;          ///< stopped early on a stop request (stop_signal.h)
  std::int64_t next_step = 0;        ///< first step not done (== the pass's steps when complete)
  std::vector<std::pair<std::string, double>> figures;  ///< Model::pass_summary of a completed pass
};

/// Where a run continues: step `step` of pass `schedule_index` of epoch `epoch` (0-based).
struct TrainingPosition {
  int epoch = 0;           ///< epoch
  int schedule_index = 0;  ///< index into the model's epoch_schedule(); == its size: only evaluation is left
  std::int64_t step = 0;   ///< first step of that pass still to run
};

/// Outcome of a whole run (identical on every rank).
struct RunResult {
  int best_epoch = -1;           ///< 1-based epoch with the best validation NDCG@100
  MetricSums best_validation;    ///< validation sums of that epoch
  MetricSums test;               ///< test sums of the best model (users == 0 if not evaluated)
  MetricSums popularity_validation, popularity_test;  ///< the popularity floor
  bool stopped_on_signal = false;  ///< a stop request ended the run early after a checkpoint
};

/// One rank's part of a data-parallel run of any model.
class Trainer {
 public:
  /// Loads this rank's shards, builds the model (identical on every rank) and the optimisers.
  Trainer(const Config& config, Communicator& comm);
  ~Trainer();

  /// Runs every epoch (from the latest checkpoint when `resume`), evaluates, writes the run
  /// directory and checkpoints (rank 0) and returns the result. A stop request ends it early
  /// with a checkpoint (result.stopped_on_signal).
  RunResult run(bool resume = false);
  /// One pass over the training users as `spec` says (groups stepped, dropout, RNG pass index),
  /// from step `first_step`; max_steps > 0 stops it early (benchmarks), otherwise
  /// train.max_steps_per_pass applies. Stops after the current step on a stop request. Does
  /// not run the model's end-of-pass hook (end_pass does).
  PassStats train_pass(int epoch, const PassSpec& spec, std::int64_t max_steps = 0, std::int64_t first_step = 0);
  /// The model's end-of-pass hook on every rank, then Note [Snapshot check] if it asks for one.
  void end_pass(const PassSpec& spec);
  /// Fits candidate `candidate` of a closed-form model (Note [Closed-form models]; a collective)
  /// and returns its name.
  std::string fit(int candidate);
  /// The model's schedule of epoch `epoch`.
  std::vector<PassSpec> schedule(int epoch = 0);
  /// Throws std::runtime_error unless every rank holds bit-identical replicated parameters
  /// (a collective: all ranks must call it).
  void check_replicas_in_sync();
  /// Validation (or test) metrics of the current model, summed over all ranks.
  MetricSums evaluate(bool test_split);
  /// Popularity baseline metrics, summed over all ranks.
  MetricSums evaluate_popularity(bool test_split);
  /// The model (tests inspect and perturb it).
  Model& model();
  /// Optimiser steps taken so far in the run (the same on every rank).
  std::int64_t global_step() const;
  /// The device the model lives on.
  torch::Device device() const;
  /// Number of items of the data set.
  std::int64_t num_items() const;
  /// Number of training users in the whole data set.
  std::int64_t num_train_users() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Keeps large host allocations on glibc's heap instead of fresh mmaps: every training step
/// allocates and frees tensors of tens of MB (logits, the W1 gradient), and an mmap per step
/// costs a page fault per 4 KiB. Binaries call it once at start-up (it is process-wide).
void configure_host_allocator();

}  // namespace recvae
