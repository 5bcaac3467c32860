#pragma once
// Counter-based random numbers: every draw is a pure function of (key, counter), so a user's
// dropout mask and noise do not depend on which rank draws them or in which order.
// See Note [World-size invariance] in batch_plan.h.
#include <cstdint>
#include <initializer_list>

namespace recvae {

/// splitmix64 finaliser: a bijective 64-bit mixer with good avalanche.
std::uint64_t mix64(std::uint64_t x);
/// Key of a stream named by a list of integers (e.g. {seed, epoch, pass, user}).
std::uint64_t stream_key(std::initializer_list<std::uint64_t> parts);
/// Uniform double in [0, 1) for (key, counter).
double uniform01(std::uint64_t key, std::uint64_t counter);
/// Standard normal for (key, counter) (Box-Muller over two uniforms of the stream).
float standard_normal(std::uint64_t key, std::uint64_t counter);

}  // namespace recvae
