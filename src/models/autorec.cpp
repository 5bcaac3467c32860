#include "recvae/models/autorec.h"

#include "recvae/linalg/sparse_ops.h"
#include "recvae/util/config.h"

namespace recvae {

AutoRecNetImpl::AutoRecNetImpl(std::int64_t items, std::int64_t hidden) {
  v = register_parameter("v", torch::empty({items, hidden}));
  mu = register_parameter("mu", torch::empty({hidden}));
  out = register_module("out", torch::nn::Linear(hidden, items));
  init_torch_default(v, items);
  init_torch_default(mu, items);
}

torch::Tensor AutoRecNetImpl::forward(const SparseBatch& batch, const torch::Tensor& weights) {
  return out(torch::sigmoid(sparse_linear(v, mu, batch, weights)));
}

AutoRecModel::AutoRecModel(const AutoRecConfig& c, double dropout, const ModelContext& ctx)
    : SingleNetworkModel(dropout), l2_(c.l2), train_users_(ctx.train_users) {
  net_ = AutoRecNet(ctx.items, c.hidden_dim);
  net_->to(ctx.device);
  network_ = net_.ptr();
}

LossTerms AutoRecModel::loss(const SparseBatch& b, const StepContext& ctx) {
  // Raw values in (AutoRec does not normalise); with dropout, the batch's mask and scale.
  auto in = dropout_ > 0 ? dropped_values(b) : b.values;
  auto err = squared_error(net_->forward(b, in), b);
  LossTerms out;
  out.loss = err.sum() / ctx.global_batch;
  out.mll_sum = -err.detach().sum();  // "mll" of a Gaussian likelihood up to constants
  out.kl_sum = torch::zeros({}, err.options());
  return out;
}

torch::Tensor AutoRecModel::regularizer(const StepContext&) {
  // The paper's objective sum_u |x_u - out_u|^2 + lambda/2 (|W|^2 + |V|^2), divided by the
  // number of users so that a step's loss (a mean over its users) is an unbiased estimate of it.
  if (l2_ <= 0) return {};
  return 0.5 * l2_ / static_cast<double>(train_users_) * (net_->v.pow(2).sum() + net_->out->weight.pow(2).sum());
}

torch::Tensor AutoRecModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  return net_->forward(fold_in, fold_in.values);
}

std::unique_ptr<AutoRecModel> make_autorec(const Config& c, const ModelContext& ctx) {
  return std::make_unique<AutoRecModel>(c.section<AutoRecConfig>(), c.train.dropout, ctx);
}

void AutoRecConfig::declare(KeyTable& t) {
  t.num("hidden_dim", hidden_dim, 1, 1 << 20, "hidden width");
  t.num("l2", l2, 0.0, 1e9,
        "lambda of the objective sum_u |x_u - out_u|^2 + lambda/2 (|W|^2 + |V|^2); a step adds lambda/(2 N_users) "
        "(|W|^2 + |V|^2) to its mean loss");
}

std::vector<std::pair<std::string, std::int64_t>> AutoRecModel::shape() const {
  return {{"items", net_->v.size(0)}, {"autorec.hidden_dim", net_->v.size(1)}};
}

}  // namespace recvae
