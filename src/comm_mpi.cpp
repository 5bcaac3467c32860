// The MPI backend: every collective on host memory over MPI_COMM_WORLD.
#include <mpi.h>

#include <cstdio>
#include <limits>

#include "recvae/comm.h"

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
  MpiCommunicator() : info_(init_process()) {}
  std::string backend() const override { return "mpi"; }
  const ProcessInfo& info() const override { return info_; }

  void allreduce_sum(float* data, std::size_t count) override {
    if (info_.size == 1) return;
    in_slices(count, [&](std::size_t off, int n) {
      MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    });
  }
  void broadcast(float* data, std::size_t count, int root) override {
    if (info_.size == 1) return;
    in_slices(count, [&](std::size_t off, int n) { MPI_Bcast(data + off, n, MPI_FLOAT, root, MPI_COMM_WORLD); });
  }
  void allreduce_sum_host(double* data, std::size_t count) override {
    in_slices(count, [&](std::size_t off, int n) {
      MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    });
  }
  void allreduce_max_host(std::int64_t* data, std::size_t count) override {
    in_slices(count, [&](std::size_t off, int n) {
      MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    });
  }
  void allreduce_min_host(std::int64_t* data, std::size_t count) override {
    in_slices(count, [&](std::size_t off, int n) {
      MPI_Allreduce(MPI_IN_PLACE, data + off, n, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    });
  }
  void broadcast_host(void* data, std::size_t bytes, int root) override {
    in_slices(bytes, [&](std::size_t off, int n) {
      MPI_Bcast(static_cast<char*>(data) + off, n, MPI_BYTE, root, MPI_COMM_WORLD);
    });
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    std::fprintf(stderr, "recvae: rank %d: %s\n", info_.rank, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  ProcessInfo info_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace recvae
