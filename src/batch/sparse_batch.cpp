#include "recvae/batch/sparse_batch.h"

#include <cmath>
#include <numeric>

#include "recvae/batch/counter_rng.h"

namespace recvae {
namespace {

torch::Tensor to_device(torch::Tensor host, const torch::Device& device) {
  return device.is_cpu() ? host : host.to(device, /*non_blocking=*/false);
}

template <class T>
torch::Tensor vector_tensor(std::vector<T>&& v, torch::Dtype dtype) {
  auto t = torch::empty({static_cast<std::int64_t>(v.size())}, torch::TensorOptions().dtype(dtype));
  std::copy(v.begin(), v.end(), t.data_ptr<T>());
  return t;
}

}  // namespace

SparseBatch assemble_batch(const CsrMatrix& shard, std::int64_t shard_offset,
                           const std::vector<std::int64_t>& global_rows, const BatchNoise* noise,
                           const torch::Device& device) {
  const auto rows = static_cast<std::int64_t>(global_rows.size());
  std::int64_t nnz = 0;
  for (auto g : global_rows) nnz += shard.row_nnz(g - shard_offset);

  std::vector<std::int64_t> cols(nnz), nnz_row(nnz), offsets(rows);
  std::vector<float> values(nnz), input(nnz), clean(nnz), row_sum(rows);
  std::int64_t pos = 0;
  const float keep_scale = noise && noise->dropout > 0 ? static_cast<float>(1.0 / (1.0 - noise->dropout)) : 1.f;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t local = global_rows[r] - shard_offset;
    const std::int64_t b = shard.indptr[local], e = shard.indptr[local + 1];
    offsets[r] = pos;
    double sq = 0, sum = 0;
    for (std::int64_t k = b; k < e; ++k) {
      sq += static_cast<double>(shard.data[k]) * shard.data[k];
      sum += shard.data[k];
    }
    // An all-zero row keeps norm 1 (the spec's guard) and so stays all-zero.
    const float inv_norm = sq > 0 ? static_cast<float>(1.0 / std::sqrt(sq)) : 1.f;
    row_sum[r] = static_cast<float>(sum);
    const std::uint64_t key = noise ? stream_key({noise->seed, static_cast<std::uint64_t>(noise->epoch),
                                                  static_cast<std::uint64_t>(noise->pass),
                                                  static_cast<std::uint64_t>(global_rows[r]), 0x64726f70ULL})
                                    : 0;
    for (std::int64_t k = b; k < e; ++k, ++pos) {
      cols[pos] = shard.indices[k];
      nnz_row[pos] = r;
      values[pos] = shard.data[k];
      clean[pos] = shard.data[k] * inv_norm;
      bool keep = true;
      if (noise && noise->dropout > 0)
        keep = uniform01(key, static_cast<std::uint64_t>(shard.indices[k])) >= noise->dropout;
      input[pos] = keep ? clean[pos] * keep_scale : 0.f;
    }
  }

  SparseBatch batch;
  batch.rows = rows;
  batch.users = to_device(vector_tensor(std::vector<std::int64_t>(global_rows), torch::kInt64), device);
  batch.cols = to_device(vector_tensor(std::move(cols), torch::kInt64), device);
  batch.nnz_row = to_device(vector_tensor(std::move(nnz_row), torch::kInt64), device);
  batch.offsets = to_device(vector_tensor(std::move(offsets), torch::kInt64), device);
  batch.values = to_device(vector_tensor(std::move(values), torch::kFloat32), device);
  batch.clean_input = to_device(vector_tensor(std::move(clean), torch::kFloat32), device);
  batch.input = noise ? to_device(vector_tensor(std::move(input), torch::kFloat32), device) : batch.clean_input;
  batch.row_sum = to_device(vector_tensor(std::move(row_sum), torch::kFloat32), device);
  if (noise) {
    const std::int64_t d = noise->latent_dim;
    auto eps = torch::empty({rows, d}, torch::kFloat32);
    float* p = eps.data_ptr<float>();
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::uint64_t key =
          stream_key({noise->seed, static_cast<std::uint64_t>(noise->epoch), static_cast<std::uint64_t>(noise->pass),
                      static_cast<std::uint64_t>(global_rows[r]), 0x6e6f697365ULL});
      for (std::int64_t j = 0; j < d; ++j) p[r * d + j] = standard_normal(key, static_cast<std::uint64_t>(j));
    }
    batch.noise = to_device(eps, device);
  }
  return batch;
}

SparseBatch assemble_eval_batch(const CsrMatrix& shard, std::int64_t lo, std::int64_t hi, const torch::Device& device) {
  std::vector<std::int64_t> rows(static_cast<size_t>(hi - lo));
  std::iota(rows.begin(), rows.end(), lo);
  return assemble_batch(shard, 0, rows, nullptr, device);
}

}  // namespace recvae
