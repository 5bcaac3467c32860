#pragma once
// RaCT (Lobel et al., ICLR 2020; samlobel/RaCT_CF): ranking-critical training. A critic learns
// each training user's NDCG@100 from the actor's likelihood term and the counts of the user's
// seen and unseen items; the actor (Mult-VAE as in the paper, or RecVAE) is then fine-tuned to
// raise the critic's estimate (Note [RaCT phases] in ract.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recvae/models/step_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `ract:` RaCT fine-tuning (Lobel et al. 2020, samlobel/RaCT_CF) of a Mult-VAE or RecVAE actor.
struct RaCTConfig : Section<RaCTConfig> {
  static constexpr const char* kName = "ract";
  static constexpr const char* kSummary =
      "RaCT (Lobel et al. 2020): a critic of NDCG@100 fine-tunes a Mult-VAE or RecVAE actor";
  std::string actor = "multvae";  ///< multvae | recvae; its own section (multvae: / recvae:) shapes it
  std::string actor_run;          ///< finished run whose best_model.pt and actor section are the actor ("": pre-train)
  int actor_epochs = 0;           ///< maximum-likelihood epochs of the actor in this run (with no actor_run)
  int critic_epochs = 50;         ///< critic pre-training epochs, actor fixed (the authors' n_epochs_ac_only)
  int ac_epochs = 50;             ///< actor-critic epochs (n_epochs_pred_and_ac)
  double critic_lr = 1e-4;        ///< Adam learning rate of the critic (lr_critic)
  double actor_lr = 2e-6;         ///< Adam learning rate of the actor in the actor-critic epochs (lr_ac)
  double critic_l2 = 1e-4;        ///< critic penalty critic_l2 * |theta|^2 / train.batch_size per step
  void declare(KeyTable& keys) override;
  void validate(const Config& config, const std::string& source) const override;
  /// The actor's learning rate and dropout; epochs: the sum of the three phases.
  TrainDefaults train_defaults(const Config& config) const override;
  std::vector<std::string> also_uses(const Config&) const override { return {actor}; }
  /// With actor_run: the actor's section becomes the actor run's (Note [The actor run's section]).
  std::vector<std::string> adopt(Config& config) override;
};

/// NDCG@k of each row of `logits` [rows, items] against the row's unseen items (the non-zeros
/// the batch's dropout removed from the input), the seen ones (kept) excluded from the ranking.
/// As the authors' target: binary gains, IDCG of min(k, unseen) hits floored at 0.1, so a row
/// with nothing unseen scores 0. [rows], no gradient.
torch::Tensor unseen_ndcg(const torch::Tensor& logits, const SparseBatch& batch, int k = 100);

/// The critic's features per row, [rows, 3]: seen items, unseen items, and the actor's negative
/// multinomial log-likelihood of the whole row (the authors' actor_error).
torch::Tensor critic_features(const torch::Tensor& logits, const SparseBatch& batch);

/// The critic: features standardised by fixed moments, then 3 -> 100 -> 100 -> 10 -> 1 with ReLU
/// and a sigmoid output (an NDCG lies in [0, 1]).
class CriticImpl : public torch::nn::Module {
 public:
  /// Glorot-uniform weights and zero biases (slim.fully_connected's defaults).
  CriticImpl();
  /// Estimates [rows] from raw features [rows, 3]. `frozen`: the weights enter as constants, so
  /// only the features carry gradient (the actor's term of the actor-critic loss).
  torch::Tensor forward(const torch::Tensor& features, bool frozen = false);
  /// Sets the standardisation moments (the measuring pass; Note [Critic features]).
  void set_moments(const torch::Tensor& mean, const torch::Tensor& var);
  /// Whether the moments have been measured.
  bool measured() const { return measured_.item<float>() > 0; }

 private:
  std::vector<torch::nn::Linear> layers_;
  torch::Tensor mean_, var_, measured_;  // buffers: saved with the model and in checkpoints
};
TORCH_MODULE(Critic);

/// RaCT behind the Model interface: the actor's own groups and schedule for its maximum-
/// likelihood epochs, then a critic group and a second optimiser over the actor's parameters.
class RaCTModel final : public StepModel {
 public:
  /// Builds the actor (loading it from ract.actor_run when set) and the critic.
  RaCTModel(const Config& config, const ModelContext& ctx);
  std::string type() const override { return "ract"; }
  torch::nn::Module& module() override { return *root_; }
  std::vector<ParameterGroup> parameter_groups() override;
  std::vector<PassSpec> epoch_schedule(int epoch) const override;
  std::int64_t noise_dim() const override { return actor_->noise_dim(); }
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  torch::Tensor regularizer(const StepContext& ctx) override;
  torch::Tensor scores(const SparseBatch& fold_in) override { return actor_->scores(fold_in); }
  bool after_pass(const PassSpec& pass) override;
  int patience_start() const override { return actor_epochs_ + critic_epochs_; }
  std::vector<std::pair<std::string, double>> pass_summary(const PassSpec& pass,
                                                           const std::vector<double>& sums) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;
  /// The actor (tests).
  ActorModel& actor() { return *actor_; }
  /// The critic (tests).
  Critic& critic() { return critic_; }

 private:
  void load_actor(const std::string& run_dir, const std::string& actor_type, const torch::Device& device);

  std::unique_ptr<ActorModel> actor_;
  Critic critic_{nullptr};
  std::shared_ptr<torch::nn::Module> root_;  // children "actor" (the actor's module) and "critic"
  int actor_epochs_, critic_epochs_;
  int critic_group_, ac_group_;
  double dropout_, critic_lr_, actor_lr_, critic_l2_, batch_size_;
};

/// RaCT from config.section<RaCTConfig>() and its actor's section.
std::unique_ptr<RaCTModel> make_ract(const Config& config, const ModelContext& ctx);

}  // namespace recvae
