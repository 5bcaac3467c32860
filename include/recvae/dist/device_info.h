#pragma once
// Device memory figures for benchmarks, through the CUDA runtime (libtorch-independent).
#include <cstdint>

namespace recvae {

/// Bytes of device `device`'s memory in use (total - free, all processes and caches), or -1
/// when this build has no CUDA runtime or the query fails.
std::int64_t device_memory_in_use(int device);

}  // namespace recvae
