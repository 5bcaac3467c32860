#include "recvae/models/multdae.h"

#include "recvae/linalg/sparse_ops.h"
#include "recvae/util/config.h"

namespace recvae {

MultDAENetImpl::MultDAENetImpl(std::int64_t items, std::int64_t latent) {
  q_w = register_parameter("q_w", torch::empty({items, latent}));
  q_b = register_parameter("q_b", torch::empty({latent}));
  p = register_module("p", torch::nn::Linear(latent, items));
  init_xavier_uniform(q_w, items, latent);
  init_truncated_normal(q_b, 0.001);
  init_xavier_uniform(p->weight, latent, items);
  init_truncated_normal(p->bias, 0.001);
}

torch::Tensor MultDAENetImpl::forward(const SparseBatch& batch, const torch::Tensor& weights) {
  return p(torch::tanh(sparse_linear(q_w, q_b, batch, weights)));
}

MultDAEModel::MultDAEModel(const MultDAEConfig& c, double dropout, const ModelContext& ctx)
    : SingleNetworkModel(dropout), l2_(c.l2) {
  net_ = MultDAENet(ctx.items, c.latent_dim);
  net_->to(ctx.device);
  network_ = net_.ptr();
}

LossTerms MultDAEModel::loss(const SparseBatch& b, const StepContext& ctx) {
  auto mll = multinomial_log_likelihood(net_->forward(b, b.input), b);
  LossTerms out;
  out.loss = -mll.sum() / ctx.global_batch;
  out.mll_sum = mll.detach().sum();
  out.kl_sum = torch::zeros({}, mll.options());
  return out;
}

torch::Tensor MultDAEModel::regularizer(const StepContext&) {
  // The notebook: neg_ll + 2 * l2_regularizer(lam)(W) = neg_ll + lam * sum |W|^2, weights only.
  if (l2_ <= 0) return {};
  return l2_ * (net_->q_w.pow(2).sum() + net_->p->weight.pow(2).sum());
}

torch::Tensor MultDAEModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  return net_->forward(fold_in, fold_in.clean_input);
}

std::unique_ptr<MultDAEModel> make_multdae(const Config& c, const ModelContext& ctx) {
  return std::make_unique<MultDAEModel>(c.section<MultDAEConfig>(), c.train.dropout, ctx);
}

void MultDAEConfig::declare(KeyTable& t) {
  t.num("latent_dim", latent_dim, 1, 1 << 20, "hidden width");
  t.num("l2", l2, 0.0, 1e6, "weight penalty l2 * sum |W|^2 per step (the notebook's lam = 0.01 / batch size)");
}

std::vector<std::pair<std::string, std::int64_t>> MultDAEModel::shape() const {
  return {{"items", net_->q_w.size(0)}, {"multdae.latent_dim", net_->q_w.size(1)}};
}

}  // namespace recvae
