#include "recvae/models/cdae.h"

#include "recvae/linalg/sparse_ops.h"
#include "recvae/util/config.h"

namespace recvae {

// Note [Per-user parameters]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// CDAE gives every training user a vector V_u. Users are sharded by rows, so V_u lives only on
// the rank that owns user u: the "users" group is never all-reduced or broadcast, and only the
// rows of the local users in a batch receive gradient. Every V_u starts at zero, so the start
// does not depend on the sharding; Adam is element-wise, so each row's trajectory depends only
// on that row's gradients and the global step count: the model is the same at every world size.
// Checkpoints gather the rows (and their Adam moments) of all ranks into one table, and a resume
// at another world size cuts its own rows out of it (train/trainer.cpp).
//
// Held-out users have no V_u. Strong generalisation folds them in: V_u = 0, then
// `cdae.foldin_steps` Adam steps (rate `cdae.foldin_lr`) on the user's fold-in row with the
// network frozen, and the scores come from the fitted V_u.

CDAENetImpl::CDAENetImpl(std::int64_t items, std::int64_t hidden) {
  w = register_parameter("w", torch::empty({items, hidden}));
  b = register_parameter("b", torch::empty({hidden}));
  out = register_module("out", torch::nn::Linear(hidden, items));
  init_torch_default(w, items);
  init_torch_default(b, items);
}

torch::Tensor CDAENetImpl::forward(const SparseBatch& batch, const torch::Tensor& weights, const torch::Tensor& v) {
  return out(torch::sigmoid(sparse_linear(w, b, batch, weights) + v));
}

CDAEModel::CDAEModel(const CDAEConfig& c, double dropout, const ModelContext& ctx)
    : users_lo_(ctx.local_users_lo),
      l2_(c.l2),
      dropout_(dropout),
      foldin_lr_(c.foldin_lr),
      foldin_steps_(c.foldin_steps) {
  net_ = CDAENet(ctx.items, c.hidden_dim);
  net_->to(ctx.device);
  users_ = torch::zeros({ctx.local_users_hi - ctx.local_users_lo, c.hidden_dim},
                        torch::TensorOptions().dtype(torch::kFloat32).device(ctx.device))
               .requires_grad_(true);
}

std::vector<ParameterGroup> CDAEModel::parameter_groups() {
  return {{"network", net_->parameters(), true}, {"users", {users_}, false}};
}

LossTerms CDAEModel::loss(const SparseBatch& b, const StepContext& ctx) {
  auto v = users_.index_select(0, b.users - users_lo_);
  auto corrupted = dropped_values(b);  // x~
  auto ll = logistic_log_likelihood(net_->forward(b, corrupted, v), b);
  auto penalty = 0.5 * l2_ * v.pow(2).sum(1);  // per user, so it stays with the user's rank
  LossTerms out;
  out.loss = -(ll - penalty).sum() / ctx.global_batch;
  out.mll_sum = ll.detach().sum();
  out.kl_sum = penalty.detach().sum();
  return out;
}

torch::Tensor CDAEModel::regularizer(const StepContext&) {
  if (l2_ <= 0) return {};
  return 0.5 * l2_ * (net_->w.pow(2).sum() + net_->out->weight.pow(2).sum());
}

// Note [Fold-in gradient]
// ~~~~~~~~~~~~~~~~~~~~~~~
// The fold-in is most of a CDAE epoch on Gowalla (validation: 20 steps over [users, 41k items],
// against one training pass), and each step's cost is in the [rows, items] passes, not in the
// two products. Autograd through the logistic likelihood spends six of those passes a step
// (log_sigmoid, its buffer, the row sum, its backward, and the zero-filled scatter of the
// positives' gradient); written out, the objective's gradient with respect to V_u needs two:
//   d(-ll)/dl = sigmoid(l) - x          (one in-place sigmoid over the logits; x at the non-zeros)
//   d/dh      = (sigmoid(l) - x) W'     (the second product)
//   d/dV_u    = d/dh * h * (1 - h) + l2 * V_u
// The first layer's x W + b does not change between steps and is computed once. The test holds
// the result to autograd's Adam steps on the same objective (tests/core/test_models.cpp).
torch::Tensor CDAEModel::scores(const SparseBatch& fold_in) {
  torch::NoGradGuard guard;
  const auto first = sparse_linear(net_->w, net_->b, fold_in, fold_in.values);
  const auto& w_out = net_->out->weight;  // [items, hidden]
  auto v = torch::zeros({fold_in.rows, users_.size(1)}, users_.options()).requires_grad_(true);
  torch::optim::Adam opt(std::vector<torch::Tensor>{v}, torch::optim::AdamOptions(foldin_lr_));
  const auto positives = fold_in.nnz_row * w_out.size(0) + fold_in.cols;
  for (int s = 0; s < foldin_steps_; ++s) {
    auto h = torch::sigmoid(first + v);
    auto p = net_->out(h).sigmoid_();
    p.view({-1}).index_add_(0, positives, -fold_in.values);
    auto g_h = p.mm(w_out);
    v.mutable_grad() = g_h.mul_(h * (1 - h)).add_(v, l2_);
    opt.step();
  }
  return net_->out(torch::sigmoid(first + v));
}

std::unique_ptr<CDAEModel> make_cdae(const Config& c, const ModelContext& ctx) {
  return std::make_unique<CDAEModel>(c.section<CDAEConfig>(), c.train.dropout, ctx);
}

void CDAEConfig::declare(KeyTable& t) {
  t.num("hidden_dim", hidden_dim, 1, 1 << 20, "hidden width K");
  t.num("l2", l2, 0.0, 1e6, "l2/2 * (|W|^2 + |W'|^2) per step, and l2/2 * |V_u|^2 per user in the loss");
  t.num("foldin_steps", foldin_steps, 0, 100000,
        "held-out users: Adam steps fitting their V_u on the fold-in row, network frozen (0: V_u = 0)");
  t.num("foldin_lr", foldin_lr, 0.0, 1e3, "learning rate of those steps", /*open_lo=*/true);
}

std::vector<std::pair<std::string, std::int64_t>> CDAEModel::shape() const {
  return {{"items", net_->w.size(0)}, {"cdae.hidden_dim", net_->w.size(1)}};
}

}  // namespace recvae
