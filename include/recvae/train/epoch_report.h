#pragma once
// What a run tells as it goes: one console line per pass, per epoch and per candidate fit on
// rank 0, and the matching JSON record in metrics.jsonl (the keys README's Outputs table lists).
#include <cstdint>
#include <map>
#include <string>

#include "recvae/eval/metrics.h"
#include "recvae/models/model.h"
#include "recvae/train/step_driver.h"
#include "recvae/util/json.h"

namespace recvae {

class RunLog;

/// The passes of one phase of an epoch, added up.
struct PhaseTotal {
  PassStats sum;   ///< loss terms (summed over passes), seconds, steps; figures of the last pass
  int passes = 0;  ///< passes of the phase
};

/// What an epoch did, for its report.
struct EpochFigures {
  int epoch = 0;                              ///< 1-based
  std::map<std::string, PhaseTotal> phases;   ///< a step model's phases
  MetricSums validation;                      ///< validation sums
  bool best = false;                          ///< the best so far
  Figures model;                              ///< the model's own figures (ALS: the objective)
  double hook_seconds = 0;                    ///< the model's epoch-start hook (ImplicitSLIM)
  double train_seconds = 0;                   ///< passes or the solve
  double eval_seconds = 0;                    ///< validation
  std::int64_t train_users = 0;               ///< training users processed, all passes
  std::int64_t allreduce_bytes_per_step = 0;  ///< gradient bytes reduced per step
};

/// What a candidate fit did, for its report.
struct FitFigures {
  int candidate = 0;          ///< 1-based
  int candidates = 0;         ///< how many
  std::string name;           ///< "lambda=500"
  MetricSums validation;      ///< validation sums
  bool best = false;          ///< the best so far
  double fit_seconds = 0;     ///< the fit
  double eval_seconds = 0;    ///< validation
  double peak_memory_gb = 0;  ///< peak host memory summed over the ranks
};

/// The console lines (rank 0) and metrics.jsonl records of a run.
class EpochReport {
 public:
  /// `log`: the run's files; `root`: whether this rank prints; `epochs`: the run's epochs.
  EpochReport(RunLog& log, bool root, int epochs, int world_size)
      : log_(log), root_(root), epochs_(epochs), world_size_(world_size) {}
  /// One pass of a step model (console).
  void pass(int epoch, const std::string& phase, const PassStats& stats) const;
  /// One epoch (console and metrics.jsonl).
  void epoch(const EpochFigures& e);
  /// One candidate fit (console and metrics.jsonl).
  void fit(const FitFigures& f);

 private:
  RunLog& log_;
  bool root_;
  int epochs_, world_size_;
};

/// {"ndcg@100", "recall@20", "recall@50", "users"} of `m`.
JsonObject metrics_json(const MetricSums& m);
/// Adds `more` to `total` (times, bytes and collectives).
void accumulate(StepBreakdown& total, const StepBreakdown& more);
/// Adds the breakdown's figures to `o` divided by `steps` (1: the totals), as
/// compute_seconds, comm_seconds, optimizer_seconds, other_seconds, comm_payload_bytes,
/// comm_wire_bytes_per_rank, collectives (Note [Step breakdown]).
void add_breakdown(JsonObject& o, const StepBreakdown& b, double steps = 1);

}  // namespace recvae
