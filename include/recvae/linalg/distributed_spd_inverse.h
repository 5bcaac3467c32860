#pragma once
// The inverse of a symmetric positive-definite matrix whose columns are split over the ranks
// (ScaLAPACK; Note [Distributed EASE] in models/ease.cpp).
#include <torch/torch.h>

#include <cstdint>

#include "recvae/linalg/block_cyclic.h"

namespace recvae {

class Communicator;

/// Whether this build has ScaLAPACK (CMake option RECVAE_WITH_SCALAPACK, Debian's
/// libscalapack-openmpi-dev).
bool scalapack_available();
/// Replaces this rank's columns `a` (float32 or float64, host, [layout.local_columns(), n] as
/// BlockCyclicColumns stores them) of a symmetric positive-definite matrix split over every rank
/// of `comm` by the same columns of its inverse, with `threads` BLAS threads. A collective.
/// Returns 0, or the order of the first leading minor that is not positive definite (the same on
/// every rank; `a` then holds no meaningful values). Throws when the build has no ScaLAPACK.
std::int64_t invert_spd_distributed(torch::Tensor& a, const BlockCyclicColumns& layout, Communicator& comm,
                                    int threads);
/// Largest number of elements one rank's part may have: ScaLAPACK indexes it with 32-bit ints.
constexpr std::int64_t kScalapackMaxLocalElements = 2147483647;

}  // namespace recvae
