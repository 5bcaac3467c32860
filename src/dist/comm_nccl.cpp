// The NCCL backend: data collectives on CUDA buffers over NCCL, control collectives over MPI.
// Written against the CUDA runtime and nccl.h only (no libtorch CUDA headers), so it compiles
// wherever the CUDA toolkit is present, even next to a CPU-only libtorch.
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "recvae/dist/comm.h"

namespace recvae {
namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

ncclDataType_t nccl_type(WireType t) {
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= 21000
  if (t == WireType::kBFloat16) return ncclBfloat16;
#else
  if (t == WireType::kBFloat16) throw std::runtime_error("dist.grad_dtype bf16 needs NCCL 2.10 or newer");
#endif
  return ncclFloat;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int device, double timeout_seconds)
      : mpi_(make_mpi_communicator()), info_(mpi_->info()), timeout_(timeout_seconds), device_(device) {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (info_.rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) mpi_->abort(1, "ncclGetUniqueId failed");
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclResult_t r = ncclCommInitRank(&comm_, info_.size, id, info_.rank);
    if (r != ncclSuccess) mpi_->abort(1, std::string("ncclCommInitRank failed: ") + ncclGetErrorString(r));
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    if (side_) cudaStreamDestroy(side_);
  }

  std::string backend() const override { return "nccl"; }
  const ProcessInfo& info() const override { return info_; }

  // Collectives are enqueued on the legacy default stream, which is the stream libtorch computes
  // on unless told otherwise, so they are ordered after the backward pass that produced the data.
  // A thread that called wait_for enqueues them on the side stream instead, after the event it
  // waited for (Note [Overlapped gradient sync]).
  using Communicator::allreduce_sum;
  void allreduce_sum(void* data, std::size_t count, WireType type) override {
    if (info_.size == 1) return;
    finish("ncclAllReduce", ncclAllReduce(data, data, count, nccl_type(type), ncclSum, comm_, stream()));
  }
  void reduce_scatter_sum(const void* send, void* recv, std::size_t block, WireType type) override {
    if (info_.size == 1) {
      check_cuda(cudaMemcpyAsync(recv, send, block * wire_bytes(type), cudaMemcpyDeviceToDevice, stream()),
                 "cudaMemcpyAsync");
      return;
    }
    finish("ncclReduceScatter", ncclReduceScatter(send, recv, block, nccl_type(type), ncclSum, comm_, stream()));
  }
  void allgather_inplace(void* recv, std::size_t block, WireType type) override {
    if (info_.size == 1) return;
    const char* mine = static_cast<const char*>(recv) + block * wire_bytes(type) * static_cast<std::size_t>(info_.rank);
    finish("ncclAllGather", ncclAllGather(mine, recv, block, nccl_type(type), comm_, stream()));
  }
  void broadcast(float* data, std::size_t count, int root) override {
    if (info_.size == 1) return;
    finish("ncclBroadcast", ncclBroadcast(data, data, count, ncclFloat, root, comm_, stream()));
  }
  // A ring of events: a slot is recorded again only after many later buckets, and a wait on a
  // slot recorded later waits for more work than needed, never for less.
  std::uint64_t compute_mark() override {
    std::lock_guard<std::mutex> lock(events_mu_);
    if (events_.empty()) {
      events_.resize(kEvents);
      for (cudaEvent_t& e : events_)
        check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    }
    const std::size_t slot = next_event_++ % events_.size();
    check_cuda(cudaEventRecord(events_[slot], nullptr), "cudaEventRecord");
    return slot + 1;
  }
  void wait_for(std::uint64_t mark) override {
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");  // a new thread starts on device 0
    {
      std::lock_guard<std::mutex> lock(events_mu_);
      if (!side_) check_cuda(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "cudaStreamCreate");
      if (mark > 0) check_cuda(cudaStreamWaitEvent(side_, events_[mark - 1], 0), "cudaStreamWaitEvent");
    }
    on_side_ = true;
  }
  void allreduce_sum_host(double* d, std::size_t n) override { mpi_->allreduce_sum_host(d, n); }
  void allreduce_max_host(std::int64_t* d, std::size_t n) override { mpi_->allreduce_max_host(d, n); }
  void allreduce_min_host(std::int64_t* d, std::size_t n) override { mpi_->allreduce_min_host(d, n); }
  void broadcast_host(void* d, std::size_t b, int root) override { mpi_->broadcast_host(d, b, root); }
  void barrier() override { mpi_->barrier(); }
  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_->abort(exit_code, message);
    std::_Exit(exit_code);  // not reached: MPI_Abort ends the process
  }

 private:
  cudaStream_t stream() const { return on_side_ ? side_ : static_cast<cudaStream_t>(nullptr); }

  // Waits for the collective with a deadline, polling NCCL's asynchronous error state, so a dead
  // peer ends the job with a message instead of a hang.
  void finish(const char* what, ncclResult_t launched) {
    if (launched != ncclSuccess) abort(1, std::string(what) + " failed: " + ncclGetErrorString(launched));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
    while (true) {
      cudaError_t q = cudaStreamQuery(stream());
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) abort(1, std::string(what) + ": CUDA error " + cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) abort(1, std::string(what) + ": NCCL error " + ncclGetErrorString(async));
      if (std::chrono::steady_clock::now() > deadline)
        abort(1, std::string(what) + " did not complete within dist.timeout_seconds=" + std::to_string(timeout_));
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  std::unique_ptr<Communicator> mpi_;
  ProcessInfo info_;
  double timeout_;
  ncclComm_t comm_ = nullptr;
  int device_;
  static constexpr std::size_t kEvents = 64;
  std::mutex events_mu_;
  std::vector<cudaEvent_t> events_;
  std::size_t next_event_ = 0;
  cudaStream_t side_ = nullptr;
  static thread_local bool on_side_;  // this thread's data collectives go to side_
};

thread_local bool NcclCommunicator::on_side_ = false;

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int device, double timeout_seconds) {
  return std::make_unique<NcclCommunicator>(device, timeout_seconds);
}
bool nccl_available() { return true; }

}  // namespace recvae
