#pragma once
// Fixtures shared by the core and multi-rank tests: small split files and configs.
#include <string>

#include "recvae/models/model.h"
#include "recvae/models/recvae.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"

namespace recvae::testing {

/// Writes a planted synthetic split (the tiny preset, resized) into `dir` and returns its path.
std::string make_synthetic_split(const std::string& dir, std::int64_t users = 1200, std::int64_t items = 300,
                                 std::int64_t heldout = 150, std::uint64_t seed = 7);
/// make_synthetic_split made once per process for suite `name` (the same arguments give the same
/// path on every call): what a suite's SetUpTestSuite would otherwise hold in a static.
const std::string& shared_synthetic_split(const std::string& name, std::int64_t users, std::int64_t items,
                                          std::int64_t heldout, std::uint64_t seed);
/// A config for fast tests on `data_path`: small network, small batches, output under `dir`.
Config small_config(const std::string& data_path, const std::string& dir);

/// The message of the InputError that parsing `yaml` raises; empty when it parses.
std::string config_error(const std::string& yaml);

/// The RecVAE network of a trainer whose model.type is recvae.
RecVAE& recvae_net(Trainer& trainer);
/// RecVAE's encoder pass `pass` (group 0).
PassSpec encoder_pass(int pass, double dropout = 0.5);
/// RecVAE's decoder pass `pass` (group 1, no dropout).
PassSpec decoder_pass(int pass);
/// A pass stepping both of RecVAE's groups (the joint variant).
PassSpec joint_pass(int pass, double dropout = 0.5);

}  // namespace recvae::testing
