// The MPI backend: every collective on host memory over one MPI communicator.
#include <mpi.h>

#include <cstdio>
#include <limits>

#include "recvae/dist/comm.h"

namespace recvae {
namespace {

// MPI counts are int: large buffers go in slices.
template <class F>
void in_slices(std::size_t count, F&& f) {
  constexpr std::size_t kMax = static_cast<std::size_t>(std::numeric_limits<int>::max());
  for (std::size_t off = 0; off < count; off += kMax) f(off, static_cast<int>(std::min(kMax, count - off)));
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm), info_(init_process()) {
    if (comm_ == MPI_COMM_SELF) info_ = ProcessInfo{};
  }
  std::string backend() const override { return "mpi"; }
  const ProcessInfo& info() const override { return info_; }

  void allreduce_sum(float* data, std::size_t count) override {
    if (info_.size == 1) return;
    in_slices(count,
              [&](std::size_t off, int n) { MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_FLOAT, MPI_SUM, comm_); });
  }
  void broadcast(float* data, std::size_t count, int root) override {
    if (info_.size == 1) return;
    in_slices(count, [&](std::size_t off, int n) { MPI_Bcast(data + off, n, MPI_FLOAT, root, comm_); });
  }
  void allreduce_sum_host(double* data, std::size_t count) override {
    in_slices(count,
              [&](std::size_t off, int n) { MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_DOUBLE, MPI_SUM, comm_); });
  }
  void allreduce_max_host(std::int64_t* data, std::size_t count) override {
    in_slices(count,
              [&](std::size_t off, int n) { MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_INT64_T, MPI_MAX, comm_); });
  }
  void allreduce_min_host(std::int64_t* data, std::size_t count) override {
    in_slices(count,
              [&](std::size_t off, int n) { MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_INT64_T, MPI_MIN, comm_); });
  }
  void broadcast_host(void* data, std::size_t bytes, int root) override {
    in_slices(bytes,
              [&](std::size_t off, int n) { MPI_Bcast(static_cast<char*>(data) + off, n, MPI_BYTE, root, comm_); });
  }
  void barrier() override { MPI_Barrier(comm_); }
  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    std::fprintf(stderr, "recvae: rank %d: %s\n", info_.rank, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, exit_code);  // the whole job, whatever comm_ is
    std::_Exit(exit_code);
  }

 private:
  MPI_Comm comm_;
  ProcessInfo info_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD); }
std::unique_ptr<Communicator> make_mpi_self_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_SELF); }

}  // namespace recvae
