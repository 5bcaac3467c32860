#pragma once
// The training run of any model: data shards, the model, the driver of its training style
// (step_driver.h for passes of steps; candidate fits and epoch solves in trainer.cpp), evaluation,
// checkpoints and the run directory. Talks to a Communicator and the model interfaces only
// (models/model.h, Note [Model interface]); it names no particular model.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/eval/metrics.h"
#include "recvae/models/any_model.h"
#include "recvae/train/checkpoint_schema.h"
#include "recvae/train/step_driver.h"
#include "recvae/util/config.h"

namespace recvae {

/// Outcome of a whole run (identical on every rank).
struct RunResult {
  int best_epoch = -1;                                ///< 1-based epoch with the best validation NDCG@100
  MetricSums best_validation;                         ///< validation sums of that epoch
  MetricSums test;                                    ///< test sums of the best model (users == 0 if not evaluated)
  MetricSums popularity_validation, popularity_test;  ///< the popularity floor
  bool stopped_on_signal = false;                     ///< a stop request ended the run early after a checkpoint
};

/// One rank's part of a data-parallel run of any model.
class Trainer {
 public:
  /// Loads this rank's shards, builds the model (identical on every rank) and its driver.
  Trainer(const Config& config, Communicator& comm);
  ~Trainer();

  /// Runs every epoch or candidate (from the latest checkpoint when `resume`), evaluates, writes
  /// the run directory and checkpoints (rank 0) and returns the result. A stop request ends it
  /// early with a checkpoint (result.stopped_on_signal).
  RunResult run(bool resume = false);
  /// A step model's pass (StepDriver::train_pass); std::logic_error for the other styles.
  PassStats train_pass(int epoch, const PassSpec& spec, std::int64_t max_steps = 0, std::int64_t first_step = 0);
  /// A step model's end-of-pass hook (StepDriver::end_pass); std::logic_error for the other styles.
  void end_pass(const PassSpec& spec);
  /// Fits candidate `candidate` of a candidate model (a collective) and returns its name;
  /// std::logic_error for the other styles.
  std::string fit(int candidate);
  /// A step model's schedule of epoch `epoch`; empty for the other styles.
  std::vector<PassSpec> schedule(int epoch = 0);
  /// Throws std::runtime_error unless every rank holds bit-identical replicated parameters
  /// (a collective: all ranks must call it).
  void check_replicas_in_sync();
  /// Validation (or test) metrics of the current model, summed over all ranks.
  MetricSums evaluate(bool test_split);
  /// Popularity baseline metrics, summed over all ranks.
  MetricSums evaluate_popularity(bool test_split);
  /// The model's core (tests inspect and perturb it).
  Model& model();
  /// The model with its training style.
  const AnyModel& any_model() const;
  /// Optimiser steps taken so far in the run (the same on every rank; 0 without steps).
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
