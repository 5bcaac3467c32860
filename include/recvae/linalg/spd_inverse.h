#pragma once
// Inverse of a symmetric positive-definite matrix with as little extra memory as the backend
// allows (Note [In-place SPD inverse] in spd_inverse.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace recvae {

/// Replaces `a` (square, contiguous, float32 or float64, symmetric positive definite; host or
/// GPU) by its inverse. Returns 0 on success, else the order of the first leading minor that
/// is not positive definite (`a` then holds no meaningful values).
std::int64_t invert_spd(torch::Tensor& a, int threads);
/// Copies the upper triangle of `a` (square, contiguous, float32 or float64, host) onto its lower
/// one, so that a matrix computed on one triangle is exactly symmetric.
void mirror_upper_to_lower(torch::Tensor& a, int threads);
/// How invert_spd works on `device` ("LAPACK potrf/potri in place", ...), for progress lines.
std::string spd_inverse_method(const torch::Device& device);
/// Extra n x n buffers beyond `a` that invert_spd allocates on `device` (0 in place).
int spd_inverse_extra_buffers(const torch::Device& device);

}  // namespace recvae
