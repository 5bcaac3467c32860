#include "recvae/models/recvae.h"

#include <cmath>

namespace recvae {

// Note [Sparse input]
// ~~~~~~~~~~~~~~~~~~~
// A user row has ~0.35% non-zeros (ML-20M: ~70 of 20,108 items), so three computations touch
// only the non-zeros:
//  * L2 normalisation and dropout are applied to the non-zero values (dropout of a zero is a
//    zero), in assemble_batch.
//  * The first layer W1 x is embedding_bag(W1, items, weights) in sum mode: a gather of the rows
//    of the item-major W1 scaled by the input values; its backward scatter-adds into those rows.
//  * The reconstruction term sum_i x_ui log_softmax(logits_u)_i needs the log-partition of each
//    row (a logsumexp over the dense logits, which the decoder computes anyway) and the logits at
//    the non-zeros only: sum_k x_k logits_{u,i_k} - |x_u| logsumexp_u.
// No users x items matrix is ever built for the input.

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// nn.Linear's default initialisation: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), ..), bias alike.
void init_uniform(torch::Tensor& t, std::int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  torch::NoGradGuard guard;
  t.uniform_(-bound, bound);
}

}  // namespace

torch::Tensor log_norm_pdf(const torch::Tensor& x, const torch::Tensor& mu, const torch::Tensor& logvar) {
  return -0.5 * (logvar + kLog2Pi + (x - mu).pow(2) / logvar.exp());
}

torch::Tensor composite_prior_log_density(const torch::Tensor& z, const torch::Tensor& mu_old,
                                          const torch::Tensor& logvar_old,
                                          const std::array<double, 3>& weights, double wide_logvar) {
  auto zero = torch::zeros_like(z);
  auto standard = log_norm_pdf(z, zero, zero) + std::log(weights[0]);
  auto posterior = log_norm_pdf(z, mu_old, logvar_old) + std::log(weights[1]);
  auto wide = log_norm_pdf(z, zero, torch::full_like(z, wide_logvar)) + std::log(weights[2]);
  return torch::logsumexp(torch::stack({standard, posterior, wide}, -1), -1);
}

EncoderImpl::EncoderImpl(const ModelShape& shape) {
  w1 = register_parameter("w1", torch::empty({shape.items, shape.hidden}));
  b1 = register_parameter("b1", torch::empty({shape.hidden}));
  init_uniform(w1, shape.items);
  init_uniform(b1, shape.items);
  for (int i = 0; i < 5; ++i) {
    if (i > 0)
      fc_.push_back(register_module("fc" + std::to_string(i + 1),
                                    torch::nn::Linear(shape.hidden, shape.hidden)));
    ln_.push_back(register_module(
        "ln" + std::to_string(i + 1),
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
  // Note [Sparse input]: W1 x as a weighted bag of W1's item rows.
  auto a1 = std::get<0>(torch::embedding_bag(w1, cols, offsets, /*scale_grad_by_freq=*/false,
                                             /*mode=sum*/ 0, /*sparse=*/false, weights)) +
            b1;
  return layers_after_first(a1);
}

std::pair<torch::Tensor, torch::Tensor> EncoderImpl::forward_dense(const torch::Tensor& x) {
  return layers_after_first(torch::addmm(b1, x, w1));
}

RecVAEImpl::RecVAEImpl(const ModelShape& shape, const std::array<double, 3>& prior_weights,
                       double prior_wide_logvar)
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

  // Note [Sparse input]: reconstruction from the logits at the non-zeros and the row log-partition.
  auto log_partition = torch::logsumexp(logits, 1);
  auto picked = logits.reshape({-1}).index_select(0, b.nnz_row * shape_.items + b.cols);
  auto mll = torch::zeros({b.rows}, logits.options()).index_add(0, b.nnz_row, b.values * picked) -
             b.row_sum * log_partition;

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

}  // namespace recvae
