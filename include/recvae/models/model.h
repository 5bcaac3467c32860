#pragma once
// The interface between the trainer and a model. The whole family (RecVAE, Mult-VAE, Mult-DAE,
// CDAE, AutoRec) is learnt from this header: what a model owns, how an epoch is scheduled, what
// a step asks of it (Note [Model interface] in model.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/batch/sparse_batch.h"

namespace recvae {

struct Config;
struct CsrMatrix;
class Communicator;
class SplitFile;

/// Loss of the local part of one global batch.
struct LossTerms {
  torch::Tensor loss;     ///< scalar to backpropagate, already divided by the global batch size
  torch::Tensor mll_sum;  ///< sum over the local users of the reconstruction term (detached)
  torch::Tensor kl_sum;   ///< sum over the local users of the KL / per-user regulariser (detached)
  /// Optional [k] sums over the local users that the model wants summed over the whole pass and
  /// all ranks; the totals reach Model::pass_summary (RaCT's feature moments and critic error).
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
  /// steps both (Note [Shared parameter groups] in trainer.cpp).
  double lr = 0;
};

/// One pass of an epoch's schedule.
struct PassSpec {
  std::string phase;        ///< name in logs and metrics.jsonl: "encoder", "decoder", "joint"
  /// Indices into parameter_groups() stepped by this pass. Empty: a measuring pass, forward only
  /// (no gradient, no optimiser step, not counted as steps); its LossTerms::stats still reach
  /// pass_summary, and an interrupted one is redone from its start on resume.
  std::vector<int> groups;
  int pass = 0;             ///< index within the epoch (part of the random stream key)
  double dropout = 0;       ///< input dropout rate of the pass
  /// Names the pass's own random streams (order, dropout masks, noise); 0 is the model's
  /// training stream. Note [Streams of a second training stage] in batch_plan.h.
  std::uint64_t noise_stream = 0;
};

/// What a step knows beyond its batch (the same on every rank).
struct StepContext {
  double global_batch = 0;        ///< users in the whole global batch (the loss normaliser)
  std::int64_t global_step = 0;   ///< optimiser steps taken before this one in the whole run
  const PassSpec* pass = nullptr; ///< the pass the step belongs to (set by the trainer)
};

/// Where the model lives and what it is trained on.
struct ModelContext {
  std::int64_t items = 0;             ///< I: input and output width
  std::int64_t train_users = 0;       ///< training users in the whole data set
  std::int64_t local_users_lo = 0;    ///< this rank's training users: global rows [lo, hi)
  std::int64_t local_users_hi = 0;    ///< (per-user parameters are sized by them)
  torch::Device device{torch::kCPU};  ///< compute device
  const SplitFile* data = nullptr;    ///< the split file, open during construction only (ALS reads its item range)
  int rank = 0;                       ///< this process's rank
  int world_size = 1;                 ///< ranks in the job
  int local_ranks = 1;                ///< ranks on this node, which share its host memory
};

/// What a closed-form model is fitted from (Note [Closed-form models] in model.cpp).
struct FitContext {
  const CsrMatrix& train;         ///< this rank's training rows
  std::int64_t first_row = 0;     ///< global index of its first row
  Communicator& comm;             ///< all ranks (every fit is a collective)
  int threads = 1;                ///< host threads of this rank
  /// Polled by a fit that can stop part-way (Note [Resumable fits]); empty: never stop.
  std::function<bool()> should_stop;
};

/// A model the trainer can train data-parallel. Implementations: models/<type>.h.
class Model {
 public:
  virtual ~Model() = default;
  /// The `model.type` string.
  virtual std::string type() const = 0;
  /// Every replicated parameter and buffer: saved, broadcast from rank 0, compared across ranks.
  virtual torch::nn::Module& module() = 0;
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
  /// Ranking scores [rows, items] of held-out users from their fold-in rows (no dropout).
  virtual torch::Tensor scores(const SparseBatch& fold_in) = 0;
  /// Logits [rows, items] of a training batch as the likelihood term sees them (the batch's
  /// dropout and noise applied), with gradient. Needed of a RaCT actor; others throw.
  virtual torch::Tensor training_logits(const SparseBatch& batch);
  /// Named figures of a completed pass from its LossTerms::stats summed over every step and
  /// rank (identical on every rank); they go to metrics.jsonl. The model may keep state from
  /// them (buffers of module(), so that checkpoints hold it).
  virtual std::vector<std::pair<std::string, double>> pass_summary(const PassSpec& pass,
                                                                   const std::vector<double>& sums) {
    return {};
  }
  /// Runs on every rank when `pass` ends; true asks the trainer to compare the replicas
  /// (RecVAE refreshes encoder_old here).
  virtual bool after_pass(const PassSpec& pass) { return false; }
  /// Runs on every rank at the start of epoch `epoch` (0-based), before its first pass; not run
  /// again when a resumed run re-enters the epoch after its start (a collective: RecVAE's
  /// ImplicitSLIM update). true asks the trainer to compare the replicas.
  virtual bool before_epoch(int epoch, const FitContext& ctx) { return false; }
  /// Named figures of the epoch that just ended, the same on every rank (ALS's objective);
  /// they go to metrics.jsonl under "model".
  virtual std::vector<std::pair<std::string, double>> epoch_summary() { return {}; }
  /// Closed-form models (EASE): the number of candidate fits, each evaluated on validation
  /// (EASE: one per lambda); 0 for models trained by passes.
  virtual int fit_candidates() const { return 0; }
  /// Fits candidate `candidate` from every rank's training rows (a collective: every rank calls
  /// it with the same candidate) and returns its name for the logs ("lambda=500").
  virtual std::string fit(int candidate, const FitContext& ctx);
  /// The name fit(candidate) returns, without fitting (a resumed run names the earlier ones).
  virtual std::string fit_name(int candidate) const;
  /// What a fit stopped part-way by FitContext::should_stop has done, for the checkpoint (Note
  /// [Resumable fits]); undefined when the last fit finished. The same on every rank.
  virtual torch::Tensor fit_progress() const { return {}; }
  /// Restores fit_progress() from a checkpoint: the next fit of the same candidate continues it.
  virtual void restore_fit_progress(const torch::Tensor& progress) {}
  /// Drops the fitted weights (a checkpoint between candidates keeps none: the best is refitted).
  virtual void release_fit() {}
  /// Numbers that fix the parameter shapes; a checkpoint with other values is refused.
  virtual std::vector<std::pair<std::string, std::int64_t>> shape() const = 0;

  /// module().parameters(): the replicated parameters.
  std::vector<torch::Tensor> parameters() { return module().parameters(); }
};

/// Base of the models whose whole state is one replicated network stepped by one joint pass per
/// epoch with input dropout (Mult-VAE, Mult-DAE, AutoRec): the network is the module and the only
/// parameter group.
class SingleNetworkModel : public Model {
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

/// The model named by config.model.type, initialised from the current torch seed.
std::unique_ptr<Model> make_model(const Config& config, const ModelContext& ctx);

}  // namespace recvae
