#pragma once
// Models solved epoch by epoch without gradients (WMF, PMF: one user step and one item step of
// alternating least squares per epoch): Note [Model interface] in model.cpp.
#include "recvae/models/model.h"

namespace recvae {

/// A model whose epoch is one collective solve.
class EpochSolvedModel : public Model {
 public:
  /// Runs epoch `epoch` (0-based) on every rank (a collective) and returns its figures (ALS:
  /// the objective); the trainer times it as the epoch's training.
  virtual Figures solve_epoch(int epoch, const FitContext& ctx) = 0;
};

}  // namespace recvae
