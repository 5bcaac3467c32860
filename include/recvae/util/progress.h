#pragma once
// Throttled progress lines for long work (parsing, writing, training passes).
#include <chrono>
#include <cstdint>
#include <string>

namespace recvae {

/// Prints "label: done/total (rate/s)" to stderr at most every `interval_seconds`.
/// Seconds from `start` to now on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);

class Progress {
 public:
  /// total may be 0 when unknown; enabled=false silences it (e.g. non-zero ranks).
  Progress(std::string label, std::int64_t total, bool enabled = true, double interval_seconds = 2.0);
  /// Advances the counter to `done` and prints when the interval has passed.
  void update(std::int64_t done);
  /// Prints the final line with the elapsed time.
  void finish();

 private:
  std::string label_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  bool enabled_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace recvae
