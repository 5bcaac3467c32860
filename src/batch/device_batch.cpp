#include "recvae/batch/device_batch.h"

#include "recvae/batch/counter_rng.h"

namespace recvae {
namespace {

// uint64 constants as the int64 values with the same bits.
constexpr std::int64_t as_signed(std::uint64_t v) { return static_cast<std::int64_t>(v); }

// Logical right shift of int64 bits (the tensor >> is arithmetic).
torch::Tensor shift_right(const torch::Tensor& x, int k) {
  return torch::bitwise_and(torch::bitwise_right_shift(x, k), as_signed((~std::uint64_t{0}) >> k));
}

torch::Tensor upload_vector(const std::vector<std::int64_t>& v, const torch::Device& device) {
  auto t = torch::from_blob(const_cast<std::int64_t*>(v.data()), {static_cast<std::int64_t>(v.size())}, torch::kInt64);
  return t.to(device, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

// Integer tensor arithmetic wraps modulo 2^64 (two's complement) on CPU and CUDA, which is what
// the uint64 mixer needs; the counter_rng equality test checks it bit for bit.
torch::Tensor mix64_tensor(const torch::Tensor& x0) {
  auto x = x0 + as_signed(0x9e3779b97f4a7c15ULL);
  x = torch::bitwise_xor(x, shift_right(x, 30)) * as_signed(0xbf58476d1ce4e5b9ULL);
  x = torch::bitwise_xor(x, shift_right(x, 27)) * as_signed(0x94d049bb133111ebULL);
  return torch::bitwise_xor(x, shift_right(x, 31));
}

torch::Tensor uniform01_tensor(const torch::Tensor& key, const torch::Tensor& counter) {
  auto bits = mix64_tensor(torch::bitwise_xor(key, mix64_tensor(counter)));
  return shift_right(bits, 11).to(torch::kFloat64) * 0x1.0p-53;
}

torch::Tensor standard_normal_tensor(const torch::Tensor& key, const torch::Tensor& counter) {
  auto u1 = 1.0 - uniform01_tensor(key, 2 * counter);
  auto u2 = uniform01_tensor(key, 2 * counter + 1);
  return (torch::sqrt(-2.0 * torch::log(u1)) * torch::cos(6.283185307179586 * u2)).to(torch::kFloat32);
}

DeviceShard DeviceShard::upload(const CsrMatrix& shard, std::int64_t row_offset, const torch::Device& device) {
  DeviceShard d;
  d.host_indptr = shard.indptr;
  d.row_offset = row_offset;
  d.indptr = upload_vector(shard.indptr, device);
  auto idx = torch::from_blob(const_cast<std::int32_t*>(shard.indices.data()), {shard.nnz()}, torch::kInt32);
  d.indices = idx.to(device, torch::kInt64);
  auto val = torch::from_blob(const_cast<float*>(shard.data.data()), {shard.nnz()}, torch::kFloat32);
  d.data = val.to(device, /*non_blocking=*/false, /*copy=*/true);
  return d;
}

SparseBatch assemble_batch_on_device(const DeviceShard& shard, const std::vector<std::int64_t>& global_rows,
                                     const BatchNoise* noise) {
  const torch::Device device = shard.indptr.device();
  const auto rows = static_cast<std::int64_t>(global_rows.size());
  // Host side: only per-row scalars (row numbers, sizes, stream keys); the non-zeros stay put.
  std::vector<std::int64_t> local(rows), counts(rows), drop_keys(rows), noise_keys(rows);
  std::int64_t nnz = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    local[r] = global_rows[r] - shard.row_offset;
    counts[r] = shard.host_indptr[local[r] + 1] - shard.host_indptr[local[r]];
    nnz += counts[r];
    if (noise) {
      const auto e = static_cast<std::uint64_t>(noise->epoch), p = static_cast<std::uint64_t>(noise->pass),
                 g = static_cast<std::uint64_t>(global_rows[r]);
      drop_keys[r] = static_cast<std::int64_t>(stream_key({noise->seed, e, p, g, 0x64726f70ULL}));
      noise_keys[r] = static_cast<std::int64_t>(stream_key({noise->seed, e, p, g, 0x6e6f697365ULL}));
    }
  }
  auto local_t = upload_vector(local, device);
  auto counts_t = upload_vector(counts, device);
  const auto opts64 = torch::TensorOptions().dtype(torch::kInt64).device(device);

  SparseBatch b;
  b.rows = rows;
  b.users = local_t + shard.row_offset;
  b.offsets = torch::cumsum(counts_t, 0) - counts_t;
  b.nnz_row = torch::repeat_interleave(torch::arange(rows, opts64), counts_t, /*dim=*/0, nnz);
  auto positions = shard.indptr.index_select(0, local_t).index_select(0, b.nnz_row) +
                   (torch::arange(nnz, opts64) - b.offsets.index_select(0, b.nnz_row));
  b.cols = shard.indices.index_select(0, positions);
  b.values = shard.data.index_select(0, positions);
  auto v64 = b.values.to(torch::kFloat64);
  auto sq = torch::zeros({rows}, v64.options()).index_add_(0, b.nnz_row, v64 * v64);
  b.row_sum = torch::zeros({rows}, v64.options()).index_add_(0, b.nnz_row, v64).to(torch::kFloat32);
  // All-zero rows keep norm 1 (the spec's guard), as on the host path.
  auto inv_norm = torch::where(sq > 0, 1.0 / torch::sqrt(sq), torch::ones_like(sq)).to(torch::kFloat32);
  b.clean_input = b.values * inv_norm.index_select(0, b.nnz_row);
  if (!noise) {
    b.input = b.clean_input;
    return b;
  }
  if (noise->dropout > 0) {
    auto keys = upload_vector(drop_keys, device).index_select(0, b.nnz_row);
    auto keep = uniform01_tensor(keys, b.cols) >= noise->dropout;
    b.input = torch::where(keep, b.clean_input * static_cast<float>(1.0 / (1.0 - noise->dropout)),
                           torch::zeros_like(b.clean_input));
  } else {
    b.input = b.clean_input;
  }
  const std::int64_t d = noise->latent_dim;
  auto nk = upload_vector(noise_keys, device).unsqueeze(1).expand({rows, d});
  b.noise = standard_normal_tensor(nk, torch::arange(d, opts64).unsqueeze(0).expand({rows, d}));
  return b;
}

}  // namespace recvae
