#pragma once
// What a run writes as it goes: the resolved config, metrics.jsonl (one object per epoch),
// final.json (file names: util/run_dir.h).
// Only the root rank writes; the other ranks hold a disabled RunLog.
#include <cstdio>
#include <string>

#include "recvae/util/json.h"

namespace recvae {

/// Writes `content` to `path` through a temporary file, fsync and rename (never a partial file).
void write_file_atomic(const std::string& path, const std::string& content);

/// Files of one run directory.
class RunLog {
 public:
  /// Creates `dir` (when enabled). A fresh run moves files of an earlier run found there into
  /// `dir/archive/<UTC time>/` rather than overwrite them; a resumed run keeps metrics.jsonl's
  /// records of the first `resume_epochs` epochs (those the checkpoint holds) and appends.
  RunLog(std::string dir, bool enabled, bool resume = false, int resume_epochs = 0);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  /// Whether this rank writes.
  bool enabled() const { return enabled_; }
  /// The run directory.
  const std::string& dir() const { return dir_; }
  /// Writes config.yaml.
  void write_config(const std::string& yaml) const;
  /// Appends one line to metrics.jsonl and flushes it.
  void append_epoch(const JsonObject& record);
  /// Writes final.json.
  void write_final(const JsonObject& record) const;

 private:
  std::string dir_;
  bool enabled_;
  std::FILE* metrics_ = nullptr;
};

}  // namespace recvae
