#pragma once
// RecVAE (Shenbin et al., WSDM 2020) as ../spec/recvae.md states it: encoder, composite prior
// with a frozen encoder_old, linear decoder with a multinomial likelihood, and the loss.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "recvae/batch/sparse_batch.h"
#include "recvae/models/step_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// `recvae:` RecVAE's architecture and schedule (spec defaults).
struct RecVAEConfig : Section<RecVAEConfig> {
  static constexpr const char* kName = "recvae";
  static constexpr const char* kSummary =
      "RecVAE (Shenbin et al. 2020): VAE with a composite prior and alternating encoder/decoder passes";
  std::int64_t hidden_dim = 600;                         ///< encoder width H
  std::int64_t latent_dim = 200;                         ///< latent width D
  double layernorm_eps = 0.1;                            ///< LayerNorm eps (reference code: 0.1)
  std::array<double, 3> prior_weights{0.15, 0.75, 0.1};  ///< N(0,1), encoder_old posterior, wide N
  double prior_wide_logvar = 10.0;                       ///< log-variance of the wide component
  double gamma = 0.005;     ///< per-user KL weight gamma*|x_u|; 0 selects the constant beta
  double beta = 0.2;        ///< constant KL weight, used only when gamma == 0
  int encoder_passes = 3;   ///< encoder passes per epoch (alternating mode)
  int decoder_passes = 1;   ///< decoder passes per epoch (alternating mode)
  bool alternating = true;  ///< false: one pass per epoch stepping both optimisers
  void declare(KeyTable& keys) override;
  void validate(const Config& config, const std::string& source) const override;
  TrainDefaults train_defaults(const Config&) const override { return {5e-4, 0.5, 50}; }
};

/// Sizes and constants of the RecVAE network.
struct RecVAEShape {
  std::int64_t items = 0;      ///< I: input and output width
  std::int64_t hidden = 600;   ///< H
  std::int64_t latent = 200;   ///< D
  double layernorm_eps = 0.1;  ///< LayerNorm eps
};

/// Element-wise log N(x; mu, exp(logvar)).
torch::Tensor log_norm_pdf(const torch::Tensor& x, const torch::Tensor& mu, const torch::Tensor& logvar);

/// Composite prior log-density per element: logsumexp of the weighted N(0,1), N(mu_old,
/// exp(logvar_old)) and N(0, exp(wide_logvar)) components.
torch::Tensor composite_prior_log_density(const torch::Tensor& z, const torch::Tensor& mu_old,
                                          const torch::Tensor& logvar_old, const std::array<double, 3>& weights,
                                          double wide_logvar);

/// The q(z|x) network: sparse first layer, five dense-skip layers with swish and LayerNorm.
class EncoderImpl : public torch::nn::Module {
 public:
  /// Creates and initialises the layers (nn.Linear's default initialisation).
  explicit EncoderImpl(const RecVAEShape& shape);
  /// (mu, logvar) for rows given by non-zeros: item `cols`, row starts `offsets`, input `weights`.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& cols, const torch::Tensor& offsets,
                                                  const torch::Tensor& weights);
  /// The same from a dense [rows, items] input (tests use it as the reference computation).
  std::pair<torch::Tensor, torch::Tensor> forward_dense(const torch::Tensor& x);

  torch::Tensor w1;  ///< [items, hidden]: first layer, stored item-major so rows can be gathered
  torch::Tensor b1;  ///< [hidden]

 private:
  std::pair<torch::Tensor, torch::Tensor> layers_after_first(const torch::Tensor& a1);
  std::vector<torch::nn::Linear> fc_;     // layers 2..5
  std::vector<torch::nn::LayerNorm> ln_;  // layers 1..5
  torch::nn::Linear mu_{nullptr}, logvar_{nullptr};
};
TORCH_MODULE(Encoder);

/// KL weighting: per-user gamma*|x_u| when gamma > 0, else the constant beta.
struct KlWeight {
  double gamma = 0.005;  ///< per-user weight factor
  double beta = 0.0;     ///< constant weight (gamma == 0)
};

/// RecVAE: encoder, encoder_old (frozen, in the composite prior) and decoder.
class RecVAEImpl : public torch::nn::Module {
 public:
  /// Builds all three networks; encoder_old is initialised independently (reference behaviour).
  RecVAEImpl(const RecVAEShape& shape, const std::array<double, 3>& prior_weights, double prior_wide_logvar);
  /// Training loss with sampling z = mu + noise * exp(logvar / 2). `global_batch` is the size of
  /// the whole global batch (Note [World-size invariance]).
  LossTerms loss(const SparseBatch& batch, double global_batch, const KlWeight& kl);
  /// Evaluation scores: decoder logits at z = mu for the clean (undropped) input, [rows, items].
  torch::Tensor scores(const SparseBatch& batch);
  /// encoder_old <- encoder (copy of every parameter and buffer).
  void refresh_prior();
  /// Parameters stepped in encoder passes.
  std::vector<torch::Tensor> encoder_parameters() const { return encoder->parameters(); }
  /// Parameters stepped in decoder passes.
  std::vector<torch::Tensor> decoder_parameters() const { return decoder->parameters(); }
  /// Shape given at construction.
  const RecVAEShape& shape() const { return shape_; }

  Encoder encoder{nullptr};            ///< q(z|x)
  Encoder encoder_old{nullptr};        ///< frozen copy used by the composite prior
  torch::nn::Linear decoder{nullptr};  ///< logits = Wd z + bd

 private:
  RecVAEShape shape_;
  std::array<double, 3> prior_weights_;
  double prior_wide_logvar_;
};
TORCH_MODULE(RecVAE);

/// RecVAE behind the Model interface: groups encoder and decoder, the alternating schedule
/// (or one joint pass), encoder_old refreshed after the last encoder pass.
class RecVAEModel final : public ActorModel {
 public:
  /// Builds the network for `ctx.items` items on `ctx.device`; `implicit_slim.every` > 0 turns
  /// on the ImplicitSLIM update of the item embeddings (Note [ImplicitSLIM]).
  RecVAEModel(const RecVAEConfig& config, double dropout, const ModelContext& ctx,
              const ImplicitSLIMConfig& implicit_slim = {});
  std::string type() const override { return "recvae"; }
  torch::nn::Module& module() override { return *net_; }
  std::vector<ParameterGroup> parameter_groups() override;
  std::vector<PassSpec> epoch_schedule(int epoch) const override;
  std::int64_t noise_dim() const override { return net_->shape().latent; }
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  torch::Tensor scores(const SparseBatch& fold_in) override { return net_->scores(fold_in); }
  torch::Tensor training_logits(const SparseBatch& batch) override;
  bool after_pass(const PassSpec& pass) override;
  /// ImplicitSLIM: before every `every`-th epoch, the encoder's first layer and the decoder's
  /// weights (both item-major) are replaced by their ImplicitSLIM projections.
  bool before_epoch(int epoch, const FitContext& ctx) override;
  std::vector<std::pair<std::string, std::int64_t>> shape() const override;
  /// The network (tests inspect and perturb it).
  RecVAE& net() { return net_; }

 private:
  RecVAE net_{nullptr};
  KlWeight kl_;
  int encoder_passes_, decoder_passes_;
  bool alternating_;
  double dropout_;
  ImplicitSLIMConfig implicit_slim_;
};

/// RecVAE from config.section<RecVAEConfig>(), train.dropout and model.implicit_slim.
std::unique_ptr<RecVAEModel> make_recvae(const Config& config, const ModelContext& ctx);

}  // namespace recvae
