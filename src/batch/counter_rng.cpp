#include "recvae/batch/counter_rng.h"

#include <cmath>

namespace recvae {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t stream_key(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t h = 0x243f6a8885a308d3ULL;  // arbitrary non-zero start
  for (std::uint64_t p : parts) h = mix64(h ^ mix64(p));
  return h;
}

double uniform01(std::uint64_t key, std::uint64_t counter) {
  return static_cast<double>(mix64(key ^ mix64(counter)) >> 11) * 0x1.0p-53;
}

float standard_normal(std::uint64_t key, std::uint64_t counter) {
  // Two uniforms per normal; counters 2c and 2c+1 keep the streams disjoint.
  const double u1 = 1.0 - uniform01(key, 2 * counter);  // (0, 1]: log is finite
  const double u2 = uniform01(key, 2 * counter + 1);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace recvae
