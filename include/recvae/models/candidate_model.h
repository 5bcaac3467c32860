#pragma once
// Models fitted in closed form as a list of candidates, each evaluated on validation (EASE: one
// per lambda; SLIM: one per (l1, l2)): Note [Closed-form models] in model.cpp.
#include <torch/torch.h>

#include <string>

#include "recvae/models/model.h"

namespace recvae {

/// A model fitted candidate by candidate instead of trained by passes.
class CandidateModel : public Model {
 public:
  /// The number of candidate fits (at least 1).
  virtual int fit_candidates() const = 0;
  /// Fits candidate `candidate` from every rank's training rows (a collective: every rank calls
  /// it with the same candidate) and returns its name for the logs ("lambda=500").
  virtual std::string fit(int candidate, const FitContext& ctx) = 0;
  /// The name fit(candidate) returns, without fitting (a resumed run names the earlier ones).
  virtual std::string fit_name(int candidate) const = 0;
  /// What a fit stopped part-way by FitContext::should_stop has done, for the checkpoint (Note
  /// [Resumable fits]); undefined when the last fit finished. The same on every rank.
  virtual torch::Tensor fit_progress() const { return {}; }
  /// Restores fit_progress() from a checkpoint: the next fit of the same candidate continues it.
  virtual void restore_fit_progress(const torch::Tensor& progress) {}
  /// Drops the fitted weights (a checkpoint between candidates keeps none: the best is refitted).
  virtual void release_fit() = 0;
};

}  // namespace recvae
