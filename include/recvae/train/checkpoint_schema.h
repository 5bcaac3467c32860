#pragma once
// What a checkpoint holds and how it is laid out in the archive (Note [Checkpoint contents] in
// checkpoint_schema.cpp); the commit protocol is checkpoint.h's.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "recvae/train/step_driver.h"

namespace recvae {

class BestEpoch;
class Model;

/// Where a run continues: step `step` of pass `schedule_index` of epoch `epoch` (0-based).
struct TrainingPosition {
  int epoch = 0;           ///< epoch (a candidate model: the candidate)
  int schedule_index = 0;  ///< index into the epoch's schedule; == its size: only evaluation is left
  std::int64_t step = 0;   ///< first step of that pass still to run (a candidate model: 1 = inside the fit)
};

/// The parts of a run that a checkpoint saves and restores.
struct CheckpointContents {
  Model* model = nullptr;          ///< type, shape and module (loaded in place)
  torch::Tensor fit_progress;      ///< a candidate fit stopped part-way (Note [Resumable fits]); undefined: none
  std::vector<GroupState> groups;  ///< a step model's optimisers (empty for the other styles)
  std::int64_t global_step = 0;    ///< optimiser steps so far
  TrainingPosition position;       ///< where the run continues
  std::string data_fingerprint;    ///< data_fingerprint of the split file
  std::string data_path;           ///< the split file (messages)
  std::string config_yaml;         ///< the resolved config (for the record)
  BestEpoch* best = nullptr;       ///< the best epoch so far (restored in place)
};

/// Checkpoint format written by write_checkpoint; an older one is refused.
constexpr std::int64_t kCheckpointFormat = 3;

/// Writes `c` to `a`.
void write_checkpoint(torch::serialize::OutputArchive& a, const CheckpointContents& c);
/// Reads `a` into `c`: refuses another format, model type, shape or data set (InputError naming
/// `path` and the difference), loads the module in place, fills every group's moments, per-user
/// rows, position, global step, fit progress and the best epoch.
void read_checkpoint(torch::serialize::InputArchive& a, CheckpointContents& c, const std::string& path);

}  // namespace recvae
