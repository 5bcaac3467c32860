#pragma once
// Small helpers shared by the test binaries: scratch directories and running the CLIs.
#include <string>

namespace recvae::testing {

/// A fresh, empty directory under the build tree's tests/tmp, unique per call.
std::string scratch_dir(const std::string& name);
/// Writes `content` to `path` (creating parent directories).
void write_text(const std::string& path, const std::string& content);
/// The whole content of the file at `path` (empty when it cannot be read).
std::string read_text(const std::string& path);
/// Result of running a shell command.
struct CommandResult {
  int exit_code = -1;  ///< the command's exit status (128+signal when killed)
  std::string output;  ///< stdout and stderr together
};
/// Runs `command` through /bin/sh, capturing stdout+stderr.
CommandResult run_command(const std::string& command);
/// Whether a file exists.
bool file_exists(const std::string& path);

}  // namespace recvae::testing
