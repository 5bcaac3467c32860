#include "recvae/util/progress.h"

#include <cstdio>
#include <utility>

namespace recvae {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

namespace {
double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Formats a count compactly: 1234567 -> "1.23M".
std::string human(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}
}  // namespace

Progress::Progress(std::string label, std::int64_t total, bool enabled, double interval_seconds)
    : label_(std::move(label)), total_(total), enabled_(enabled), interval_(interval_seconds) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(std::int64_t done) {
  done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (seconds_between(last_, now) < interval_) return;
  last_ = now;
  double elapsed = seconds_between(start_, now);
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  if (total_ > 0) {
    std::fprintf(stderr, "%s: %s/%s (%.1f%%, %s/s)\n", label_.c_str(), human(static_cast<double>(done_)).c_str(),
                 human(static_cast<double>(total_)).c_str(),
                 100.0 * static_cast<double>(done_) / static_cast<double>(total_), human(rate).c_str());
  } else {
    std::fprintf(stderr, "%s: %s (%s/s)\n", label_.c_str(), human(static_cast<double>(done_)).c_str(),
                 human(rate).c_str());
  }
}

void Progress::finish() {
  if (!enabled_) return;
  double elapsed = seconds_between(start_, std::chrono::steady_clock::now());
  std::fprintf(stderr, "%s: %s done in %.2f s\n", label_.c_str(), human(static_cast<double>(done_)).c_str(), elapsed);
  enabled_ = false;  // a second finish() prints nothing
}

}  // namespace recvae
