#include "recvae/models/recvae.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "recvae/dist/comm.h"
#include "recvae/models/implicit_slim.h"
#include "recvae/linalg/sparse_ops.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

}  // namespace

torch::Tensor log_norm_pdf(const torch::Tensor& x, const torch::Tensor& mu, const torch::Tensor& logvar) {
  return -0.5 * (logvar + kLog2Pi + (x - mu).pow(2) / logvar.exp());
}

torch::Tensor composite_prior_log_density(const torch::Tensor& z, const torch::Tensor& mu_old,
                                          const torch::Tensor& logvar_old, const std::array<double, 3>& weights,
                                          double wide_logvar) {
  auto zero = torch::zeros_like(z);
  auto standard = log_norm_pdf(z, zero, zero) + std::log(weights[0]);
  auto posterior = log_norm_pdf(z, mu_old, logvar_old) + std::log(weights[1]);
  auto wide = log_norm_pdf(z, zero, torch::full_like(z, wide_logvar)) + std::log(weights[2]);
  return torch::logsumexp(torch::stack({standard, posterior, wide}, -1), -1);
}

EncoderImpl::EncoderImpl(const RecVAEShape& shape) {
  w1 = register_parameter("w1", torch::empty({shape.items, shape.hidden}));
  b1 = register_parameter("b1", torch::empty({shape.hidden}));
  init_torch_default(w1, shape.items);
  init_torch_default(b1, shape.items);
  for (int i = 0; i < 5; ++i) {
    if (i > 0)
      fc_.push_back(register_module("fc" + std::to_string(i + 1), torch::nn::Linear(shape.hidden, shape.hidden)));
    ln_.push_back(
        register_module("ln" + std::to_string(i + 1),
                        torch::nn::LayerNorm(torch::nn::LayerNormOptions({shape.hidden}).eps(shape.layernorm_eps))));
  }
  mu_ = register_module("fc_mu", torch::nn::Linear(shape.hidden, shape.latent));
  logvar_ = register_module("fc_logvar", torch::nn::Linear(shape.hidden, shape.latent));
}

std::pair<torch::Tensor, torch::Tensor> EncoderImpl::layers_after_first(const torch::Tensor& a1) {
  auto h = ln_[0](torch::silu(a1));
  auto skip = h;  // running sum h1 + ... + h_{k-1} of the dense skip connections
  for (int k = 0; k < 4; ++k) {
    auto next = ln_[k + 1](torch::silu(fc_[k](h) + skip));
    skip = skip + next;
    h = next;
  }
  return {mu_(h), logvar_(h)};
}

std::pair<torch::Tensor, torch::Tensor> EncoderImpl::forward(const torch::Tensor& cols, const torch::Tensor& offsets,
                                                             const torch::Tensor& weights) {
  // Note [Sparse input] (sparse_ops.cpp): W1 x as a weighted bag of W1's item rows.
  auto a1 = std::get<0>(torch::embedding_bag(w1, cols, offsets, /*scale_grad_by_freq=*/false,
                                             /*mode=sum*/ 0, /*sparse=*/false, weights));
  if (a1.size(0) != offsets.size(0)) a1 = torch::zeros({offsets.size(0), w1.size(1)}, w1.options());
  a1 = a1 + b1;
  return layers_after_first(a1);
}

std::pair<torch::Tensor, torch::Tensor> EncoderImpl::forward_dense(const torch::Tensor& x) {
  return layers_after_first(torch::addmm(b1, x, w1));
}

RecVAEImpl::RecVAEImpl(const RecVAEShape& shape, const std::array<double, 3>& prior_weights, double prior_wide_logvar)
    : shape_(shape), prior_weights_(prior_weights), prior_wide_logvar_(prior_wide_logvar) {
  encoder = register_module("encoder", Encoder(shape));
  encoder_old = register_module("encoder_old", Encoder(shape));
  decoder = register_module("decoder", torch::nn::Linear(shape.latent, shape.items));
  for (auto& p : encoder_old->parameters()) p.set_requires_grad(false);
}

LossTerms RecVAEImpl::loss(const SparseBatch& b, double global_batch, const KlWeight& kl) {
  auto [mu, logvar] = encoder(b.cols, b.offsets, b.input);
  auto z = mu + b.noise * (0.5 * logvar).exp();
  auto logits = decoder(z);  // [rows, items]

  auto mll = multinomial_log_likelihood(logits, b);  // Note [Sparse input]

  torch::Tensor mu_old, logvar_old;
  {
    torch::NoGradGuard no_grad;  // encoder_old is frozen: no graph, no gradient
    std::tie(mu_old, logvar_old) = encoder_old(b.cols, b.offsets, b.clean_input);
  }
  auto kl_per_user = (log_norm_pdf(z, mu, logvar) -
                      composite_prior_log_density(z, mu_old, logvar_old, prior_weights_, prior_wide_logvar_))
                         .sum(1);
  auto weight = kl.gamma > 0 ? b.row_sum * kl.gamma : torch::full_like(b.row_sum, kl.beta);

  LossTerms out;
  out.loss = -(mll - weight * kl_per_user).sum() / global_batch;
  out.mll_sum = mll.detach().sum();
  out.kl_sum = kl_per_user.detach().sum();
  return out;
}

torch::Tensor RecVAEImpl::scores(const SparseBatch& b) {
  torch::NoGradGuard no_grad;
  auto mu = encoder(b.cols, b.offsets, b.clean_input).first;
  return decoder(mu);
}

void RecVAEImpl::refresh_prior() {
  torch::NoGradGuard no_grad;
  auto src = encoder->parameters();
  auto dst = encoder_old->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  auto bsrc = encoder->buffers();
  auto bdst = encoder_old->buffers();
  for (size_t i = 0; i < bsrc.size(); ++i) bdst[i].copy_(bsrc[i]);
}

RecVAEModel::RecVAEModel(const RecVAEConfig& c, double dropout, const ModelContext& ctx,
                         const ImplicitSLIMConfig& implicit_slim)
    : kl_{c.gamma, c.beta},
      encoder_passes_(c.encoder_passes),
      decoder_passes_(c.decoder_passes),
      alternating_(c.alternating),
      dropout_(dropout),
      implicit_slim_(implicit_slim) {
  net_ =
      RecVAE(RecVAEShape{ctx.items, c.hidden_dim, c.latent_dim, c.layernorm_eps}, c.prior_weights, c.prior_wide_logvar);
  net_->to(ctx.device);
  net_->train();
}

std::vector<ParameterGroup> RecVAEModel::parameter_groups() {
  return {{"encoder", net_->encoder_parameters(), true}, {"decoder", net_->decoder_parameters(), true}};
}

std::vector<PassSpec> RecVAEModel::epoch_schedule(int) const {
  // Spec, Training: encoder passes with dropout, encoder_old <- encoder, decoder passes without.
  if (!alternating_) return {{"joint", {0, 1}, 0, dropout_}};
  std::vector<PassSpec> passes;
  for (int p = 0; p < encoder_passes_; ++p) passes.push_back({"encoder", {0}, p, dropout_});
  for (int p = 0; p < decoder_passes_; ++p) passes.push_back({"decoder", {1}, encoder_passes_ + p, 0.0});
  return passes;
}

LossTerms RecVAEModel::loss(const SparseBatch& batch, const StepContext& ctx) {
  return net_->loss(batch, ctx.global_batch, kl_);
}

torch::Tensor RecVAEModel::training_logits(const SparseBatch& b) {
  auto [mu, logvar] = net_->encoder(b.cols, b.offsets, b.input);
  return net_->decoder(mu + b.noise * (0.5 * logvar).exp());
}

bool RecVAEModel::after_pass(const PassSpec& pass) {
  // encoder_old <- encoder right after the last encoder pass of the epoch (never in joint mode).
  if (!alternating_ || pass.phase != "encoder" || pass.pass + 1 != encoder_passes_) return false;
  net_->refresh_prior();
  return true;  // Note [Snapshot check]
}

bool RecVAEModel::before_epoch(int epoch, const FitContext& ctx) {
  // The authors' run.py: `epoch % step == step - 1` (0-based), before the epoch's training.
  const int every = implicit_slim_.every;
  if (every <= 0 || epoch % every != every - 1) return false;
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard guard;
  for (torch::Tensor* w : {&net_->encoder->w1, &net_->decoder->weight}) {
    torch::Tensor updated = implicit_slim(*w, ctx.train, ctx.comm, implicit_slim_, ctx.threads);
    w->copy_(updated.to(w->options()));
  }
  if (ctx.comm.rank() == 0)
    std::fprintf(stderr, "implicit_slim: epoch %d: encoder and decoder item embeddings replaced in %.1f s\n", epoch + 1,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return true;
}

std::unique_ptr<RecVAEModel> make_recvae(const Config& c, const ModelContext& ctx) {
  return std::make_unique<RecVAEModel>(c.section<RecVAEConfig>(), c.train.dropout, ctx, c.model.implicit_slim);
}

void RecVAEConfig::declare(KeyTable& t) {
  t.num("hidden_dim", hidden_dim, 1, 1 << 20, "encoder width H");
  t.num("latent_dim", latent_dim, 1, 1 << 20, "latent width D");
  t.num("layernorm_eps", layernorm_eps, 0.0, 1e9,
        "LayerNorm eps (the reference code's current value; the paper-era code used 1e-5)", /*open_lo=*/true);
  t.custom(
      "prior_weights",
      [this, &t](const YAML::Node& n, const std::string& key) {
        if (!n.IsSequence() || n.size() != 3) t.fail(key, "expected a list of 3 numbers");
        double sum = 0;
        for (int i = 0; i < 3; ++i) {
          double w = 0;
          try {
            w = n[i].as<double>();
          } catch (const YAML::Exception&) {
            t.fail(key, "expected a list of 3 numbers");
          }
          if (!(w > 0)) t.fail(key, "weights must be > 0");
          prior_weights[i] = w;
          sum += w;
        }
        if (std::abs(sum - 1.0) > 1e-6) t.fail(key, "weights must sum to 1");
      },
      [this] {
        YAML::Node n(YAML::NodeType::Sequence);
        for (double w : prior_weights) n.push_back(w);
        n.SetStyle(YAML::EmitterStyle::Flow);
        return n;
      },
      "composite prior weights: N(0,1), encoder_old posterior, wide N(0, e^wide_logvar); > 0, sum 1");
  t.num("prior_wide_logvar", prior_wide_logvar, -100.0, 100.0, "log-variance of the wide component");
  t.num("gamma", gamma, 0.0, 1e6, "per-user KL weight gamma*|x_u|; 0 selects the constant `recvae.beta`");
  t.num("beta", beta, 0.0, 1e6, "constant KL weight (Mult-VAE style), used only when gamma is 0");
  t.num("encoder_passes", encoder_passes, 0, 1000, "encoder passes per epoch (alternating mode)");
  t.num("decoder_passes", decoder_passes, 0, 1000, "decoder passes per epoch (alternating mode)");
  t.flag("alternating", alternating,
         "false: one pass per epoch stepping both optimisers with dropout, encoder_old never refreshed");
}

void RecVAEConfig::validate(const Config&, const std::string& source) const {
  if (alternating && encoder_passes + decoder_passes == 0)
    throw InputError(source + ": config keys 'recvae.encoder_passes' and 'recvae.decoder_passes' are both 0");
  if (gamma == 0 && beta == 0)
    throw InputError(source + ": config keys 'recvae.gamma' and 'recvae.beta' are both 0 (no KL term)");
}

std::vector<std::pair<std::string, std::int64_t>> RecVAEModel::shape() const {
  return {{"items", net_->shape().items},
          {"recvae.hidden_dim", net_->shape().hidden},
          {"recvae.latent_dim", net_->shape().latent}};
}

}  // namespace recvae
