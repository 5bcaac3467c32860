#pragma once
// The communicator interface the trainer talks to, with one implementation per backend
// (comm_mpi.cpp: CPU buffers over MPI; comm_nccl.cpp: CUDA buffers over NCCL). libtorch-free.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace recvae {

/// Rank, size and local rank of this process as MPI reports them (works under mpirun and srun).
struct ProcessInfo {
  int rank = 0;             ///< rank in MPI_COMM_WORLD
  int size = 1;             ///< processes in MPI_COMM_WORLD
  int local_rank = 0;       ///< rank among the processes of this node (MPI_COMM_TYPE_SHARED)
  int local_size = 1;       ///< processes on this node
  bool serialized = false;  ///< MPI lets any thread of the process call it, one at a time (MPI_THREAD_SERIALIZED)
};

/// Element type of a data collective's buffers and of what crosses the wire.
enum class WireType {
  kFloat32,   ///< IEEE float
  kBFloat16,  ///< bfloat16 (the upper half of a float); sums are formed in fp32 and rounded per step
};
/// Bytes of one element of `type`.
std::size_t wire_bytes(WireType type);

/// Collectives of one job. "Data" collectives act on float buffers in the backend's memory
/// (host for MPI, device for NCCL); "control" collectives always act on host memory.
class Communicator {
 public:
  virtual ~Communicator() = default;
  /// Backend name ("mpi", "nccl").
  virtual std::string backend() const = 0;
  /// This process's place in the job.
  virtual const ProcessInfo& info() const = 0;
  /// Rank of this process.
  int rank() const { return info().rank; }
  /// Number of processes.
  int size() const { return info().size; }

  /// In-place sum of a float buffer across ranks (backend memory).
  void allreduce_sum(float* data, std::size_t count) { allreduce_sum(data, count, WireType::kFloat32); }
  /// In-place sum of `count` elements of `type` across ranks (backend memory).
  virtual void allreduce_sum(void* data, std::size_t count, WireType type) = 0;
  /// Sums `send` (size() blocks of `block` elements) across ranks and leaves block rank() of
  /// the sum in `recv` (backend memory; `recv` must not overlap `send`).
  virtual void reduce_scatter_sum(const void* send, void* recv, std::size_t block, WireType type) = 0;
  /// Every rank's `block` elements, in rank order, into `recv` (size() * block elements, backend
  /// memory). This rank's block is read from `recv` itself (in place).
  virtual void allgather_inplace(void* recv, std::size_t block, WireType type) = 0;
  /// In-place broadcast of a float buffer from `root` (backend memory).
  virtual void broadcast(float* data, std::size_t count, int root) = 0;

  /// Where the calling thread's device work stands now, for data collectives issued from another
  /// thread to wait for (Note [Overlapped gradient sync] in train/overlapped_sync.cpp). 0 on the
  /// host, where a buffer is final once written.
  virtual std::uint64_t compute_mark() { return 0; }
  /// Makes the calling thread's next data collective wait for `mark` (compute_mark's) and run
  /// beside the compute thread's work: NCCL enqueues it on a stream of its own. Nothing on the host.
  virtual void wait_for(std::uint64_t mark) { (void)mark; }

  /// In-place sum of host doubles across ranks (metric sums, checksums).
  virtual void allreduce_sum_host(double* data, std::size_t count) = 0;
  /// In-place element-wise max of host int64 values (flags, hashes compared as max == min).
  virtual void allreduce_max_host(std::int64_t* data, std::size_t count) = 0;
  /// In-place element-wise min of host int64 values.
  virtual void allreduce_min_host(std::int64_t* data, std::size_t count) = 0;
  /// Broadcast of host bytes from `root`.
  virtual void broadcast_host(void* data, std::size_t bytes, int root) = 0;
  /// Waits for every rank.
  virtual void barrier() = 0;
  /// Ends the whole job now (MPI_Abort) after printing `message` with this rank's number.
  [[noreturn]] virtual void abort(int exit_code, const std::string& message) = 0;
};

/// Every rank's `bytes` bytes at `data`, concatenated in rank order, on every rank (a collective
/// of control broadcasts: the sizes, then each rank's part).
std::vector<char> allgather_host_bytes(Communicator& comm, const void* data, std::size_t bytes);

/// allgather_host_bytes of a vector of trivially copyable values.
template <typename T>
std::vector<T> allgather_host(Communicator& comm, const std::vector<T>& mine) {
  const std::vector<char> bytes = allgather_host_bytes(comm, mine.data(), mine.size() * sizeof(T));
  std::vector<T> all(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(all.data(), bytes.data(), bytes.size());
  return all;
}

/// Runs the body of a binary that may run as many ranks, mapping exceptions as run_guarded
/// (util/error.h) does. `body` creates the job's communicator into `comm` (so that it can pick
/// the backend from its config). When one rank fails in a job of several it ends the whole job
/// (Communicator::abort) so that no rank waits forever in a collective. MPI is finalised at the end.
int run_guarded_job(const char* program, const std::function<int(std::unique_ptr<Communicator>& comm)>& body);

/// Initialises MPI (idempotent; works without mpirun as a singleton) and reports this process.
ProcessInfo init_process();
/// Finalises MPI if this process initialised it.
void finalize_process();

/// The MPI backend (host buffers) over MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_communicator();
/// The MPI backend over MPI_COMM_SELF: a one-rank job inside a multi-rank one (tests compare
/// distributed training against it).
std::unique_ptr<Communicator> make_mpi_self_communicator();
/// The NCCL backend on CUDA device `device`; throws when the build has no NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(int device, double timeout_seconds);
/// Whether this build includes the NCCL backend.
bool nccl_available();

}  // namespace recvae
