#pragma once
// The training run: data shards, model, optimiser groups, passes, gradient sync, the
// encoder_old snapshot, evaluation and the run directory. Talks to the Communicator only.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/util/config.h"
#include "recvae/eval/metrics.h"
#include "recvae/models/recvae.h"

namespace recvae {

/// Which optimiser groups a pass steps.
enum class StepGroup { kEncoder, kDecoder, kBoth };

/// One pass of an epoch's schedule.
struct PassSpec {
  StepGroup group;           ///< optimiser group(s) stepped
  int pass;                  ///< index within the epoch (part of the RNG stream key)
  double dropout;            ///< input dropout rate of the pass
  bool refresh_prior_after;  ///< encoder_old <- encoder once this pass ends
};

/// The passes of one epoch: alternating = encoder passes with dropout, refresh, decoder passes
/// without dropout; otherwise one joint pass with dropout and no refresh (spec: Training).
std::vector<PassSpec> epoch_schedule(const TrainConfig& train);

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
};

/// Where a run continues: step `step` of pass `schedule_index` of epoch `epoch` (0-based).
struct TrainingPosition {
  int epoch = 0;           ///< epoch
  int schedule_index = 0;  ///< index into epoch_schedule(); == its size: only evaluation is left
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

/// One rank's part of a data-parallel RecVAE run.
class Trainer {
 public:
  /// Loads this rank's shards, builds the model (identical on every rank) and the optimisers.
  Trainer(const Config& config, Communicator& comm);
  ~Trainer();

  /// Runs every epoch (from the latest checkpoint when `resume`), evaluates, writes the run
  /// directory and checkpoints (rank 0) and returns the result. A stop request ends it early
  /// with a checkpoint (result.stopped_on_signal).
  RunResult run(bool resume = false);
  /// One pass over the training users stepping `group` (pass index within the epoch for RNG),
  /// from step `first_step`; max_steps > 0 stops it early (benchmarks), otherwise
  /// train.max_steps_per_pass applies. Stops after the current step on a stop request.
  PassStats train_pass(int epoch, int pass, StepGroup group, double dropout, std::int64_t max_steps = 0,
                       std::int64_t first_step = 0);
  /// encoder_old <- encoder on every rank, then Note [Snapshot check].
  void refresh_prior();
  /// Throws std::runtime_error unless every rank holds bit-identical encoder, encoder_old and
  /// decoder parameters (a collective: all ranks must call it).
  void check_replicas_in_sync();
  /// Validation (or test) metrics of the current model, summed over all ranks.
  MetricSums evaluate(bool test_split);
  /// Popularity baseline metrics, summed over all ranks.
  MetricSums evaluate_popularity(bool test_split);
  /// The model (tests inspect and perturb it).
  RecVAE& model();
  /// The device the model lives on.
  torch::Device device() const;
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
