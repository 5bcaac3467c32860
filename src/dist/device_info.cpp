#include "recvae/dist/device_info.h"

#ifdef RECVAE_HAVE_CUDA_RUNTIME
#include <cuda_runtime.h>
#endif

namespace recvae {

std::int64_t device_memory_in_use(int device) {
#ifdef RECVAE_HAVE_CUDA_RUNTIME
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) return -1;
  size_t free_bytes = 0, total_bytes = 0;
  const bool ok = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  cudaSetDevice(previous);
  return ok ? static_cast<std::int64_t>(total_bytes - free_bytes) : -1;
#else
  (void)device;
  return -1;
#endif
}

}  // namespace recvae
