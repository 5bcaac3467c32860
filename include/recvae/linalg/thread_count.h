#pragma once
// Scoped intra-op thread counts for the host kernels.

namespace recvae {

/// Sets libtorch's intra-op (OpenMP) pool to `threads` (at least 1) for the guard's lifetime and
/// restores the previous size when it ends, also when an exception leaves the scope. OpenBLAS's
/// OpenMP build follows the same pool, so LAPACK calls inside the scope use it too.
class ThreadCount {
 public:
  /// Switches to `threads` threads.
  explicit ThreadCount(int threads);
  /// Restores the previous count.
  ~ThreadCount();
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int before_;
};

}  // namespace recvae
