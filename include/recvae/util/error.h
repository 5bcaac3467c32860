#pragma once
// Error types shared by every binary. Their exit codes are part of the command-line contract.
#include <functional>
#include <stdexcept>
#include <string>

namespace recvae {

/// Bad user input (config, data file, command line): binaries print one line and exit with 2.
class InputError : public std::runtime_error {
 public:
  /// Builds the error from a one-line message that names the file, key or value at fault.
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

/// Exit status for bad input, relied upon by scripts and tests.
constexpr int kExitInputError = 2;
/// Exit status for an internal or runtime failure (I/O error during a run, NaN loss, ...).
constexpr int kExitRuntimeError = 1;

/// Runs a single-process binary's body and maps its exceptions to the exit-status contract:
/// InputError prints "<program>: error: <message>" and gives kExitInputError, any other
/// exception "<program>: failure: <message>" and kExitRuntimeError.
int run_guarded(const char* program, const std::function<int()>& body);

}  // namespace recvae
