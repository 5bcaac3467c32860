#pragma once
// What identifies a data set and a configuration: checked across ranks at start-up and against
// a checkpoint on resume.
#include <cstdint>
#include <string>

namespace recvae {

class SplitFile;

/// FNV-1a 64-bit hash of `text`.
std::uint64_t fnv1a64(const std::string& text);
/// Item count, per-split rows and non-zeros, and a hash of the item ids of a split file.
std::string data_fingerprint(const SplitFile& file);

}  // namespace recvae
