#include "recvae/linalg/spd_inverse.h"
#include "recvae/linalg/lapack.h"
#include "recvae/linalg/thread_count.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>

// Note [In-place SPD inverse]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// EASE needs P = (G + lambda I)^-1 for G of items x items: 13.4 GB in float64 for MSD's or
// Gowalla's 41k items. torch's linalg_cholesky and cholesky_inverse each return a new matrix
// (and copy to column-major first), so the torch route peaks at three n x n matrices. LAPACK's
// potrf and potri work in place on one triangle, so on the host the whole inverse lives in the
// input's own storage: a row-major symmetric matrix read as column-major is the same matrix, so
// LAPACK's lower triangle is our upper one, which is mirrored into the lower triangle at the end.
// The build uses LAPACK when CMake finds it (Debian's liblapack3 comes with libtorch-dev; the
// OpenBLAS alternative makes it multi-threaded); otherwise, and on GPUs (where cuSOLVER does the
// work and memory is rarely the limit), the torch route is used.

namespace recvae {

namespace {

template <typename T>
void mirror_upper_to_lower(T* a, std::int64_t n, int threads) {
  constexpr std::int64_t kTile = 64;  // tiles keep both the read and the write cache-friendly
  const std::int64_t tiles = (n + kTile - 1) / kTile;
  const ThreadCount thread_count(threads);
  at::parallel_for(0, tiles, 1, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t ti = t0; ti < t1; ++ti)
      for (std::int64_t tj = 0; tj <= ti; ++tj)
        for (std::int64_t i = ti * kTile; i < std::min(n, (ti + 1) * kTile); ++i)
          for (std::int64_t j = tj * kTile; j < std::min(i, (tj + 1) * kTile); ++j) a[i * n + j] = a[j * n + i];
  });
}

#ifdef RECVAE_HAVE_LAPACK
template <typename T, typename Potrf, typename Potri>
std::int64_t lapack_inverse(torch::Tensor& a, int threads, Potrf potrf, Potri potri) {
  const std::int64_t n64 = a.size(0);
  if (n64 > 2147483647) throw std::invalid_argument("invert_spd: matrix too large for 32-bit LAPACK");
  const int n = static_cast<int>(n64);
  const char uplo = 'L';
  int info = 0;
  T* p = a.data_ptr<T>();
  const ThreadCount thread_count(threads);  // OpenBLAS (OpenMP build) follows the OpenMP pool size
  potrf(&uplo, &n, p, &n, &info);
  if (info == 0) potri(&uplo, &n, p, &n, &info);
  if (info < 0) throw std::logic_error("invert_spd: LAPACK argument " + std::to_string(-info) + " invalid");
  if (info > 0) return info;
  mirror_upper_to_lower(p, n64, threads);
  return 0;
}
#endif

std::int64_t torch_inverse(torch::Tensor& a) {
  torch::Tensor l, info;
  std::tie(l, info) = torch::linalg_cholesky_ex(a);
  const std::int64_t failed = info.item<std::int64_t>();
  if (failed != 0) return failed;
  a = torch::Tensor();  // drop the input before the inverse is allocated
  a = torch::cholesky_inverse(l);
  return 0;
}

}  // namespace

void mirror_upper_to_lower(torch::Tensor& a, int threads) {
  if (a.dim() != 2 || a.size(0) != a.size(1) || !a.is_contiguous() || !a.device().is_cpu())
    throw std::invalid_argument("mirror_upper_to_lower: expected a contiguous square host matrix");
  if (a.scalar_type() == torch::kFloat64)
    mirror_upper_to_lower(a.data_ptr<double>(), a.size(0), threads);
  else if (a.scalar_type() == torch::kFloat32)
    mirror_upper_to_lower(a.data_ptr<float>(), a.size(0), threads);
  else
    throw std::invalid_argument("mirror_upper_to_lower: expected float32 or float64");
}

std::int64_t invert_spd(torch::Tensor& a, int threads) {
  if (a.dim() != 2 || a.size(0) != a.size(1) || !a.is_contiguous())
    throw std::invalid_argument("invert_spd: expects a contiguous square matrix");
  if (a.scalar_type() != torch::kFloat64 && a.scalar_type() != torch::kFloat32)
    throw std::invalid_argument("invert_spd: float64 or float32 only");
  if (a.size(0) == 0) return 0;
#ifdef RECVAE_HAVE_LAPACK
  if (!a.is_cuda()) {
    if (a.scalar_type() == torch::kFloat64) return lapack_inverse<double>(a, threads, dpotrf_, dpotri_);
    return lapack_inverse<float>(a, threads, spotrf_, spotri_);
  }
#endif
  (void)threads;
  return torch_inverse(a);
}

std::string spd_inverse_method(const torch::Device& device) {
  if (device.is_cuda()) return "torch Cholesky on the GPU";
#ifdef RECVAE_HAVE_LAPACK
  return "LAPACK potrf/potri in place";
#else
  return "torch Cholesky (no LAPACK in this build: two extra n x n buffers)";
#endif
}

int spd_inverse_extra_buffers(const torch::Device& device) {
#ifdef RECVAE_HAVE_LAPACK
  if (!device.is_cuda()) return 0;
#endif
  (void)device;
  return 2;
}

}  // namespace recvae
