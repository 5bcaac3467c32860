#pragma once
// The layout of a run directory (output.dir): the one place that names its files. The trainer
// writes through it, and RaCT and recvae_recommend read a finished run through it.
#include <string>
#include <vector>

namespace recvae {

/// A run directory and the paths of its files.
class RunDir {
 public:
  /// `dir`: the directory (need not exist).
  explicit RunDir(std::string dir) : dir_(std::move(dir)) {}
  /// The directory itself.
  const std::string& dir() const { return dir_; }
  /// The resolved config (YAML, every key).
  std::string config() const { return file("config.yaml"); }
  /// One JSON object per epoch or candidate fit.
  std::string metrics() const { return file("metrics.jsonl"); }
  /// The run's outcome (JSON).
  std::string final_json() const { return file("final.json"); }
  /// The best model's module as a torch archive.
  std::string best_model() const { return file("best_model.pt"); }
  /// The best model in plain HDF5 (serve/model_export.h's layout).
  std::string model_export() const { return file("model.h5"); }
  /// Learning curves drawn by the launch scripts.
  std::string curves() const { return file("curves.png"); }
  /// The checkpoint store (train/checkpoint.h).
  std::string checkpoints() const { return file("checkpoints"); }
  /// Where a fresh run moves an earlier run's files.
  std::string archive() const { return file("archive"); }
  /// The files of a run, which a fresh run in the same directory archives rather than overwrites.
  std::vector<std::string> outputs() const;
  /// The `model` that final.json records ("" when there is no final.json or it names none).
  std::string model_type() const;

 private:
  std::string file(const char* name) const { return dir_ + "/" + name; }
  std::string dir_;
};

/// The string value of top-level key `key` of the JSON object `text` ("" when absent or not a string).
std::string json_top_level_string(const std::string& text, const std::string& key);

}  // namespace recvae
