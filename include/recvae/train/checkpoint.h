#pragma once
// Checkpoints of a run: the commit protocol that keeps the previous checkpoint loadable whatever
// moment a crash hits (Note [Checkpoint commit]), and the fingerprint that refuses to resume a
// run on another model shape or data set.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

namespace recvae {

/// The checkpoints of one run directory (`<run dir>/checkpoints/`).
class CheckpointStore {
 public:
  /// `run_dir` is the run's output directory; `keep` is how many checkpoints are kept.
  CheckpointStore(std::string run_dir, int keep = 2);
  /// Path of the newest committed checkpoint, or "" when there is none.
  std::string latest() const;
  /// Writes a checkpoint named `name` (e.g. "epoch-0003") filled by `fill`, commits it and prunes
  /// old ones. Only one rank may call it.
  void save(const std::string& name, const std::function<void(torch::serialize::OutputArchive&)>& fill) const;
  /// Loads `path` onto `device`.
  static void load(const std::string& path, const torch::Device& device,
                   const std::function<void(torch::serialize::InputArchive&)>& read);

 private:
  std::string dir_;
  int keep_;
};

/// Reads an int64 scalar stored with archive.write(key, IValue).
std::int64_t read_int(torch::serialize::InputArchive& a, const std::string& key);
/// Reads a double stored with archive.write(key, IValue).
double read_double(torch::serialize::InputArchive& a, const std::string& key);
/// Reads a string stored with archive.write(key, IValue).
std::string read_string(torch::serialize::InputArchive& a, const std::string& key);

}  // namespace recvae
