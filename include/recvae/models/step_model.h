#pragma once
// Models trained by passes of gradient steps (RecVAE, Mult-VAE, Mult-DAE, CDAE, AutoRec, RaCT):
// their parameter groups, the schedule of each epoch, the loss of a step and the hooks around
// passes (Note [Model interface] in model.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/models/model.h"

namespace recvae {

/// Loss of the local part of one global batch.
struct LossTerms {
  torch::Tensor loss;     ///< scalar to backpropagate, already divided by the global batch size
  torch::Tensor mll_sum;  ///< sum over the local users of the reconstruction term (detached)
  torch::Tensor kl_sum;   ///< sum over the local users of the KL / per-user regulariser (detached)
  /// Optional [k] sums over the local users that the model wants summed over the whole pass and
  /// all ranks; the totals reach StepModel::pass_summary (RaCT's feature moments and critic error).
  torch::Tensor stats;
};

/// Parameters with one flat gradient buffer and one Adam optimiser.
struct ParameterGroup {
  std::string name;                   ///< "encoder", "decoder", "network", "users"
  std::vector<torch::Tensor> params;  ///< the tensors
  /// true: a replica on every rank, gradients all-reduced. false: per-user rows owned by this
  /// rank (first dimension = the rank's training users), never all-reduced (Note [Per-user parameters]).
  bool replicated = true;
  /// Adam learning rate of the group; 0: train.lr. Two groups may hold the same tensors (one
  /// parameter set with two optimisers used in different passes, as RaCT's actor): a pass never
  /// steps both (Note [Shared parameter groups] in step_driver.cpp).
  double lr = 0;
};

/// One pass of an epoch's schedule.
struct PassSpec {
  std::string phase;  ///< name in logs and metrics.jsonl: "encoder", "decoder", "joint"
  /// Indices into parameter_groups() stepped by this pass. Empty: a measuring pass, forward only
  /// (no gradient, no optimiser step, not counted as steps); its LossTerms::stats still reach
  /// pass_summary, and an interrupted one is redone from its start on resume.
  std::vector<int> groups;
  int pass = 0;        ///< index within the epoch (part of the random stream key)
  double dropout = 0;  ///< input dropout rate of the pass
  /// Names the pass's own random streams (order, dropout masks, noise); 0 is the model's
  /// training stream. Note [Streams of a second training stage] in batch_plan.h.
  std::uint64_t noise_stream = 0;
};

/// What a step knows beyond its batch (the same on every rank).
struct StepContext {
  double global_batch = 0;         ///< users in the whole global batch (the loss normaliser)
  std::int64_t global_step = 0;    ///< optimiser steps taken before this one in the whole run
  const PassSpec* pass = nullptr;  ///< the pass the step belongs to (set by the trainer)
};

/// A model trained data-parallel by passes of steps.
class StepModel : public Model {
 public:
  /// The optimiser groups, in a fixed order (PassSpec::groups indexes it).
  virtual std::vector<ParameterGroup> parameter_groups() = 0;
  /// The passes of epoch `epoch` (0-based; RaCT's phases change with the epoch).
  virtual std::vector<PassSpec> epoch_schedule(int epoch) const = 0;
  /// Width of the per-user Gaussian noise rows a training batch needs (0: none).
  virtual std::int64_t noise_dim() const { return 0; }
  /// Training loss of the local part of a batch (Note [World-size invariance]).
  virtual LossTerms loss(const SparseBatch& batch, const StepContext& ctx) = 0;
  /// Penalty on the replicated parameters, added once per step after the all-reduce (Note
  /// [Regularisers after the all-reduce]); undefined when the model has none.
  virtual torch::Tensor regularizer(const StepContext& ctx) { return {}; }
  /// Named figures of a completed pass from its LossTerms::stats summed over every step and
  /// rank (identical on every rank); they go to metrics.jsonl. The model may keep state from
  /// them (buffers of module(), so that checkpoints hold it).
  virtual Figures pass_summary(const PassSpec& pass, const std::vector<double>& sums) { return {}; }
  /// Runs on every rank when `pass` ends; true asks the trainer to compare the replicas
  /// (RecVAE refreshes encoder_old here).
  virtual bool after_pass(const PassSpec& pass) { return false; }
  /// Runs on every rank at the start of epoch `epoch` (0-based), before its first pass; not run
  /// again when a resumed run re-enters the epoch after its start (a collective: RecVAE's
  /// ImplicitSLIM update). true asks the trainer to compare the replicas.
  virtual bool before_epoch(int epoch, const FitContext& ctx) { return false; }
};

/// A step model with a multinomial likelihood whose training logits a critic can read: the
/// actors RaCT fine-tunes (Mult-VAE, RecVAE).
class ActorModel : public StepModel {
 public:
  /// Logits [rows, items] of a training batch as the likelihood term sees them (the batch's
  /// dropout and noise applied), with gradient.
  virtual torch::Tensor training_logits(const SparseBatch& batch) = 0;
};

/// Base of the models whose whole state is one replicated network stepped by one joint pass per
/// epoch with input dropout (Mult-VAE, Mult-DAE, AutoRec): the network is the module and the only
/// parameter group. `Base`: StepModel, or ActorModel for an actor.
template <class Base = StepModel>
class SingleNetworkModel : public Base {
 public:
  torch::nn::Module& module() override { return *network_; }
  std::vector<ParameterGroup> parameter_groups() override { return {{"network", network_->parameters(), true}}; }
  std::vector<PassSpec> epoch_schedule(int) const override { return {{"joint", {0}, 0, dropout_}}; }

 protected:
  /// `dropout`: the input dropout of the joint pass.
  explicit SingleNetworkModel(double dropout) : dropout_(dropout) {}
  std::shared_ptr<torch::nn::Module> network_;  ///< set by the derived constructor
  double dropout_;                              ///< input dropout of the joint pass
};

}  // namespace recvae
