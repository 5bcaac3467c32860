#include "recvae/models/multvae.h"

#include <algorithm>

#include "recvae/linalg/sparse_ops.h"
#include "recvae/util/config.h"

namespace recvae {

MultVAENetImpl::MultVAENetImpl(std::int64_t items, std::int64_t hidden, std::int64_t latent_dim) : latent(latent_dim) {
  q1_w = register_parameter("q1_w", torch::empty({items, hidden}));
  q1_b = register_parameter("q1_b", torch::empty({hidden}));
  q2 = register_module("q2", torch::nn::Linear(hidden, 2 * latent));
  p1 = register_module("p1", torch::nn::Linear(latent, hidden));
  p2 = register_module("p2", torch::nn::Linear(hidden, items));
  init_xavier_uniform(q1_w, items, hidden);
  init_truncated_normal(q1_b, 0.001);
  for (auto* l : {&q2, &p1, &p2}) {
    init_xavier_uniform((*l)->weight, (*l)->weight.size(1), (*l)->weight.size(0));
    init_truncated_normal((*l)->bias, 0.001);
  }
}

std::pair<torch::Tensor, torch::Tensor> MultVAENetImpl::encode(const SparseBatch& batch, const torch::Tensor& weights) {
  auto out = q2(torch::tanh(sparse_linear(q1_w, q1_b, batch, weights)));
  return {out.narrow(1, 0, latent), out.narrow(1, latent, latent)};
}

torch::Tensor MultVAENetImpl::decode(const torch::Tensor& z) { return p2(torch::tanh(p1(z))); }

std::vector<torch::Tensor> MultVAENetImpl::weights() const { return {q1_w, q2->weight, p1->weight, p2->weight}; }

MultVAEModel::MultVAEModel(const MultVAEConfig& c, double dropout, const ModelContext& ctx)
    : SingleNetworkModel(dropout),
      beta_cap_(c.beta_cap),
      l2_(c.l2),
      anneal_steps_(c.anneal_steps),
      hidden_(c.hidden_dim) {
  net_ = MultVAENet(ctx.items, c.hidden_dim, c.latent_dim);
  net_->to(ctx.device);
  network_ = net_.ptr();
}

double MultVAEModel::beta_at(std::int64_t step) const {
  // The notebook: anneal = min(anneal_cap, update_count / total_anneal_steps), update_count
  // counting optimiser steps. Ours counts global steps, so it is the same at every world size.
  if (anneal_steps_ <= 0) return beta_cap_;
  return std::min(beta_cap_, static_cast<double>(step) / static_cast<double>(anneal_steps_));
}

LossTerms MultVAEModel::loss(const SparseBatch& b, const StepContext& ctx) {
  auto [mu, logvar] = net_->encode(b, b.input);
  auto z = mu + b.noise * (0.5 * logvar).exp();
  auto mll = multinomial_log_likelihood(net_->decode(z), b);
  auto kl = (0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1)).sum(1);
  LossTerms out;
  out.loss = -(mll - beta_at(ctx.global_step) * kl).sum() / ctx.global_batch;
  out.mll_sum = mll.detach().sum();
  out.kl_sum = kl.detach().sum();
  return out;
}

torch::Tensor MultVAEModel::training_logits(const SparseBatch& b) {
  auto [mu, logvar] = net_->encode(b, b.input);
  return net_->decode(mu + b.noise * (0.5 * logvar).exp());
}

torch::Tensor MultVAEModel::regularizer(const StepContext&) {
  if (l2_ <= 0) return {};
  torch::Tensor sum;
  for (auto& w : net_->weights()) sum = sum.defined() ? sum + w.pow(2).sum() : w.pow(2).sum();
  return l2_ * sum;
}

torch::Tensor MultVAEModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  return net_->decode(net_->encode(fold_in, fold_in.clean_input).first);
}

std::unique_ptr<MultVAEModel> make_multvae(const Config& c, const ModelContext& ctx) {
  return std::make_unique<MultVAEModel>(c.section<MultVAEConfig>(), c.train.dropout, ctx);
}

void MultVAEConfig::declare(KeyTable& t) {
  t.num("hidden_dim", hidden_dim, 1, 1 << 20, "width of the encoder's and the decoder's hidden layer");
  t.num("latent_dim", latent_dim, 1, 1 << 20, "latent width");
  t.num("beta_cap", beta_cap, 0.0, 1e6, "KL weight ceiling (the notebook's `anneal_cap`)");
  t.num("anneal_steps", anneal_steps, 0, 1LL << 40,
        "beta = min(beta_cap, global step / anneal_steps), global steps counted over the whole run and every rank "
        "(0: beta_cap throughout)");
  t.num("l2", l2, 0.0, 1e6, "weight penalty l2 * sum |W|^2 per step (the notebook's `lam`, 0 for the VAE)");
}

std::vector<std::pair<std::string, std::int64_t>> MultVAEModel::shape() const {
  return {{"items", net_->q1_w.size(0)}, {"multvae.hidden_dim", hidden_}, {"multvae.latent_dim", net_->latent}};
}

}  // namespace recvae
