#pragma once
// A hand-made batch for the models' tests: six users of a 40-item set with the sparse batch a
// training step would see and its dense equivalents, for dense reference computations.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "recvae/batch/sparse_batch.h"
#include "recvae/data/csr.h"
#include "recvae/models/model.h"

namespace recvae::testing {

constexpr std::int64_t kItems = 40;

// Six users (one empty), binary values, with dropout and latent noise drawn as in training.
struct Batch {
  SparseBatch sparse;
  torch::Tensor x;      // [6, items] raw values
  torch::Tensor input;  // [6, items] normalised, dropped-out encoder input
  torch::Tensor clean;  // [6, items] normalised input
  std::int64_t rows = 6;

  Batch(double dropout, std::int64_t noise_dim, std::int64_t first_user = 0) {
    CsrMatrix m = CsrMatrix::empty(0, kItems);
    m.rows = 6;
    m.indptr = {0};
    const std::vector<std::vector<std::int32_t>> pattern = {{1, 4, 9, 20, 39}, {0, 2}, {5, 6, 7, 8, 30, 31}, {}, {11},
                                                            {3, 13, 23, 33}};
    for (const auto& row : pattern) {
      for (auto c : row) {
        m.indices.push_back(c);
        m.data.push_back(1.f);
      }
      m.indptr.push_back(m.nnz());
    }
    std::vector<std::int64_t> users;
    for (std::int64_t r = 0; r < 6; ++r) users.push_back(first_user + r);
    BatchNoise noise{3, 0, 0, dropout, noise_dim};
    sparse = assemble_batch(m, first_user, users, &noise, torch::kCPU);
    x = torch::zeros({6, kItems});
    input = torch::zeros({6, kItems});
    clean = torch::zeros({6, kItems});
    for (std::int64_t k = 0; k < sparse.cols.numel(); ++k) {
      const auto r = sparse.nnz_row[k].item<std::int64_t>(), c = sparse.cols[k].item<std::int64_t>();
      x[r][c] = sparse.values[k].item<float>();
      input[r][c] = sparse.input[k].item<float>();
      clean[r][c] = sparse.clean_input[k].item<float>();
    }
  }
};

inline ModelContext context(std::int64_t users = 6) {
  ModelContext c;
  c.items = kItems;
  c.train_users = users;
  c.local_users_lo = 0;
  c.local_users_hi = users;
  return c;
}

inline void expect_close(const torch::Tensor& got, const torch::Tensor& want, double rtol = 1e-5, double atol = 1e-5) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got, want, rtol, atol)) << "max |diff| " << (got - want).abs().max().item<double>();
}

}  // namespace recvae::testing
