#pragma once
// Fixtures shared by the core and multi-rank tests: small split files and configs.
#include <string>

#include "recvae/util/config.h"

namespace recvae::testing {

/// Writes a planted synthetic split (the tiny preset, resized) into `dir` and returns its path.
std::string make_synthetic_split(const std::string& dir, std::int64_t users = 1200, std::int64_t items = 300,
                                 std::int64_t heldout = 150, std::uint64_t seed = 7);
/// A config for fast tests on `data_path`: small network, small batches, output under `dir`.
Config small_config(const std::string& data_path, const std::string& dir);

}  // namespace recvae::testing
