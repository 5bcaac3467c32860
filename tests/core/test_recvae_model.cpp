#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "recvae/models/recvae.h"

namespace recvae {
namespace {

constexpr double kPi = 3.14159265358979323846;
const std::array<double, 3> kWeights{0.15, 0.75, 0.1};

double normal_logpdf(double x, double mu, double logvar) {
  return -0.5 * (logvar + std::log(2 * kPi) + (x - mu) * (x - mu) / std::exp(logvar));
}

TEST(RecVAEModel, LogNormPdfMatchesFormula) {
  auto x = torch::tensor({0.3, -1.2, 4.0}, torch::kFloat64);
  auto mu = torch::tensor({0.0, 0.5, 3.0}, torch::kFloat64);
  auto lv = torch::tensor({0.0, -0.7, 2.0}, torch::kFloat64);
  auto got = log_norm_pdf(x, mu, lv);
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(got[i].item<double>(), normal_logpdf(x[i].item<double>(), mu[i].item<double>(), lv[i].item<double>()),
                1e-12);
}

TEST(RecVAEModel, CompositePriorIsTheWeightedMixture) {
  const std::array<double, 3> w{0.15, 0.75, 0.1};
  auto z = torch::tensor({0.1, -3.0, 25.0, 0.0}, torch::kFloat64);
  auto mu = torch::tensor({0.2, -2.5, 1.0, 0.0}, torch::kFloat64);
  auto lv = torch::tensor({-1.0, 0.3, 0.0, -5.0}, torch::kFloat64);
  auto got = composite_prior_log_density(z, mu, lv, w, 10.0);
  for (int i = 0; i < 4; ++i) {
    const double zi = z[i].item<double>();
    const double p = w[0] * std::exp(normal_logpdf(zi, 0, 0)) +
                     w[1] * std::exp(normal_logpdf(zi, mu[i].item<double>(), lv[i].item<double>())) +
                     w[2] * std::exp(normal_logpdf(zi, 0, 10.0));
    EXPECT_NEAR(got[i].item<double>(), std::log(p), 1e-9) << "element " << i;
  }
}

// A random sparse batch and its dense equivalent.
struct Fixture {
  RecVAEShape shape{50, 16, 4, 0.1};
  SparseBatch batch;
  torch::Tensor dense_x, dense_clean;

  explicit Fixture(double dropout) {
    CsrMatrix m = CsrMatrix::empty(0, shape.items);
    m.rows = 6;
    m.indptr = {0};
    std::int32_t pattern[6][5] = {{1, 4, 9, 20, 49},    {0, 2, -1, -1, -1},   {5, 6, 7, 8, 30},
                                  {-1, -1, -1, -1, -1}, {11, -1, -1, -1, -1}, {3, 13, 23, 33, 43}};
    for (auto& row : pattern) {
      for (auto c : row)
        if (c >= 0) {
          m.indices.push_back(c);
          m.data.push_back(c % 3 == 0 ? 2.f : 1.f);
        }
      m.indptr.push_back(m.nnz());
    }
    std::vector<std::int64_t> rows = {0, 1, 2, 3, 4, 5};
    BatchNoise noise{11, 0, 0, dropout, shape.latent};
    batch = assemble_batch(m, 0, rows, &noise, torch::kCPU);
    dense_x = torch::zeros({6, shape.items});
    dense_clean = torch::zeros({6, shape.items});
    auto cols = batch.cols, nr = batch.nnz_row;
    for (std::int64_t k = 0; k < cols.numel(); ++k) {
      dense_x[nr[k].item<std::int64_t>()][cols[k].item<std::int64_t>()] = batch.input[k].item<float>();
      dense_clean[nr[k].item<std::int64_t>()][cols[k].item<std::int64_t>()] = batch.clean_input[k].item<float>();
    }
  }
};

TEST(RecVAEModel, SparseFirstLayerEqualsDenseForwardAndGradients) {
  torch::manual_seed(1);
  Fixture f(0.5);
  Encoder enc(f.shape);
  auto [mu_s, lv_s] = enc->forward(f.batch.cols, f.batch.offsets, f.batch.input);
  (mu_s.pow(2).sum() + (lv_s * 0.3).exp().sum()).backward();
  std::vector<torch::Tensor> grads_sparse;
  for (auto& p : enc->parameters()) {
    grads_sparse.push_back(p.grad().clone());
    p.mutable_grad().zero_();
  }
  auto [mu_d, lv_d] = enc->forward_dense(f.dense_x);
  (mu_d.pow(2).sum() + (lv_d * 0.3).exp().sum()).backward();
  EXPECT_TRUE(torch::allclose(mu_s, mu_d, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(lv_s, lv_d, 1e-5, 1e-6));
  auto params = enc->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::allclose(grads_sparse[i], params[i].grad(), 1e-4, 1e-6)) << "parameter " << i;
  // The empty row (user 3) gets the bias only: its first layer is b1.
  EXPECT_GT(grads_sparse[0].abs().sum().item<double>(), 0.0);
}

TEST(RecVAEModel, LossMatchesDenseReferenceWithPerUserKlWeight) {
  torch::manual_seed(2);
  Fixture f(0.5);
  RecVAE model(f.shape, kWeights, 10.0);
  for (double gamma : {0.005, 0.0}) {
    KlWeight kl{gamma, 0.3};
    LossTerms t = model->loss(f.batch, 10.0, kl);
    // Dense reference, as the reference implementation computes it.
    auto [mu, lv] = model->encoder->forward_dense(f.dense_x);
    auto z = mu + f.batch.noise * (0.5 * lv).exp();
    auto logp = torch::log_softmax(model->decoder(z), 1);
    auto raw = torch::zeros_like(f.dense_x);
    raw.index_put_({f.batch.nnz_row, f.batch.cols}, f.batch.values);
    auto mll = (logp * raw).sum(1);
    auto [mu_old, lv_old] = model->encoder_old->forward_dense(f.dense_clean);
    auto kl_u = (log_norm_pdf(z, mu, lv) - composite_prior_log_density(z, mu_old, lv_old, kWeights, 10.0)).sum(1);
    auto weight = gamma > 0 ? raw.sum(1) * gamma : torch::full({6}, 0.3);
    auto expected = -(mll - weight * kl_u).sum() / 10.0;
    EXPECT_NEAR(t.loss.item<double>(), expected.item<double>(), 1e-4 * std::abs(expected.item<double>()))
        << "gamma " << gamma;
    EXPECT_NEAR(t.mll_sum.item<double>(), mll.sum().item<double>(), 1e-3);
  }
}

TEST(RecVAEModel, KlWeightIsGammaTimesUndroppedCount) {
  torch::manual_seed(3);
  Fixture f(0.5);
  RecVAE model(f.shape, kWeights, 10.0);
  // d loss / d gamma = sum_u |x_u| kl_u / B: the weight uses the raw (undropped) row sums.
  LossTerms a = model->loss(f.batch, 6.0, {0.01, 0});
  LossTerms b = model->loss(f.batch, 6.0, {0.02, 0});
  torch::NoGradGuard g;
  auto [mu, lv] = model->encoder(f.batch.cols, f.batch.offsets, f.batch.input);
  auto z = mu + f.batch.noise * (0.5 * lv).exp();
  auto [mo, lo] = model->encoder_old(f.batch.cols, f.batch.offsets, f.batch.clean_input);
  auto kl_u = (log_norm_pdf(z, mu, lv) - composite_prior_log_density(z, mo, lo, kWeights, 10.0)).sum(1);
  const double slope = (f.batch.row_sum * kl_u).sum().item<double>() / 6.0;
  EXPECT_NEAR((b.loss - a.loss).item<double>(), 0.01 * slope, 1e-3 * std::abs(0.01 * slope) + 1e-5);
  // Row sums count the raw values: user 0 has items 1,4,9,20,49 with 9 worth 2.
  EXPECT_FLOAT_EQ(f.batch.row_sum[0].item<float>(), 6.f);
}

TEST(RecVAEModel, EncoderOldIsFrozenAndRefreshCopiesTheEncoder) {
  torch::manual_seed(4);
  Fixture f(0.5);
  RecVAE model(f.shape, kWeights, 10.0);
  for (auto& p : model->encoder_old->parameters()) EXPECT_FALSE(p.requires_grad());
  auto before = model->encoder_old->parameters()[0].clone();
  EXPECT_FALSE(torch::equal(before, model->encoder->parameters()[0]));  // independently initialised
  model->loss(f.batch, 6.0, {0.005, 0}).loss.backward();
  for (auto& p : model->encoder_old->parameters()) EXPECT_FALSE(p.grad().defined());
  model->refresh_prior();
  auto enc = model->encoder->parameters(), old = model->encoder_old->parameters();
  for (size_t i = 0; i < enc.size(); ++i) EXPECT_TRUE(torch::equal(enc[i], old[i]));
}

TEST(RecVAEModel, EvaluationScoresUseMuAndTheCleanInput) {
  torch::manual_seed(5);
  Fixture f(0.5);
  RecVAE model(f.shape, kWeights, 10.0);
  auto s = model->scores(f.batch);
  torch::NoGradGuard g;
  auto expected = model->decoder(model->encoder->forward_dense(f.dense_clean).first);
  EXPECT_TRUE(torch::allclose(s, expected, 1e-5, 1e-5));
}

}  // namespace
}  // namespace recvae
