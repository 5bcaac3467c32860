// The MPI backend: every collective on host memory over one MPI communicator.
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "recvae/dist/comm.h"

namespace recvae {
namespace {

// MPI counts are int: large buffers go in slices.
template <class F>
void in_slices(std::size_t count, F&& f) {
  constexpr std::size_t kMax = static_cast<std::size_t>(std::numeric_limits<int>::max());
  for (std::size_t off = 0; off < count; off += kMax) f(off, static_cast<int>(std::min(kMax, count - off)));
}

// A bfloat16 is the upper 16 bits of a float; widening is exact.
float bf16_to_float(std::uint16_t v) {
  const std::uint32_t bits = static_cast<std::uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest, ties to even (as torch's conversion), NaN kept a quiet NaN.
std::uint16_t float_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

// MPI has no bfloat16 type or sum: the elements travel as 16-bit integers and this operator
// adds two of them in fp32, rounding the result once.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

MPI_Op bf16_sum_op() {
  static MPI_Op op = [] {
    MPI_Op created;
    MPI_Op_create(&bf16_sum, /*commute=*/1, &created);
    return created;
  }();
  return op;
}

MPI_Datatype mpi_type(WireType t) { return t == WireType::kBFloat16 ? MPI_UINT16_T : MPI_FLOAT; }
MPI_Op mpi_sum(WireType t) { return t == WireType::kBFloat16 ? bf16_sum_op() : MPI_SUM; }

int block_count(std::size_t block) {
  if (block > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::runtime_error("a rank's block of " + std::to_string(block) + " elements exceeds MPI's int counts");
  return static_cast<int>(block);
}

// Note [Ring reduce-scatter]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Open MPI's MPI_Reduce_scatter_block (every algorithm of its tuned component) took longer than
// an MPI_Allreduce of the whole buffer on one node (64 MB over two ranks: 24-28 ms against 19 ms),
// though a reduce-scatter is half an all-reduce. The sharded optimizer (Note [Sharded optimizer])
// pays one per step, so it runs its own ring: the partial sum of block b starts at rank b+1 and
// travels right, each rank adding its own part, until it reaches rank b after N-1 hops (one
// MPI_Sendrecv of a block per hop, (N-1)/N of the buffer sent per rank, the bandwidth optimum).
// The order of the additions is fixed by the ranks, so every run at a world size sums alike.
// MPI_Allgather has the same trouble at some sizes: over the emulated 1 Gbit/s link it took twice
// a reduce-scatter's time for a 64 MB buffer (0.56 against 0.29 s; recvae_bench --collectives).
// So the all-gather is a ring too: block b starts at rank b and is forwarded right N-1 times, one
// MPI_Sendrecv per hop, (N-1)/N of the buffer sent per rank whatever the size (0.28 s there; on
// shared memory 6.5 ms for 64 MB, about half of the reduce-scatter).

// dst[i] += src[i] over `count` elements of `type` (bf16: summed in fp32, rounded once).
void add_into(void* dst, const void* src, std::size_t count, WireType type) {
  if (type == WireType::kBFloat16) {
    auto* d = static_cast<std::uint16_t*>(dst);
    const auto* s = static_cast<const std::uint16_t*>(src);
    for (std::size_t i = 0; i < count; ++i) d[i] = float_to_bf16(bf16_to_float(d[i]) + bf16_to_float(s[i]));
  } else {
    auto* d = static_cast<float*>(dst);
    const auto* s = static_cast<const float*>(src);
    for (std::size_t i = 0; i < count; ++i) d[i] += s[i];
  }
}

// Where block b (taken modulo n, so b may be negative) starts in a buffer of n blocks of `bytes`.
std::size_t ring_offset(int b, int n, std::size_t bytes) { return static_cast<std::size_t>((b % n + n) % n) * bytes; }

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm), info_(init_process()) {
    if (comm_ == MPI_COMM_SELF) info_ = ProcessInfo{};
  }
  std::string backend() const override { return "mpi"; }
  const ProcessInfo& info() const override { return info_; }

  using Communicator::allreduce_sum;
  void allreduce_sum(void* data, std::size_t count, WireType type) override {
    if (info_.size == 1) return;
    char* bytes = static_cast<char*>(data);
    const std::size_t width = wire_bytes(type);
    in_slices(count, [&](std::size_t off, int n) {
      MPI_Allreduce(MPI_IN_PLACE, bytes + off * width, n, mpi_type(type), mpi_sum(type), comm_);
    });
  }
  // A ring (Note [Ring reduce-scatter]).
  void reduce_scatter_sum(const void* send, void* recv, std::size_t block, WireType type) override {
    const std::size_t width = wire_bytes(type), bytes = block * width;
    const int n = info_.size, r = info_.rank;
    const char* mine = static_cast<const char*>(send);
    auto part = [&](int b) { return mine + ring_offset(b, n, bytes); };
    if (n == 1) {
      std::memcpy(recv, send, bytes);
      return;
    }
    const int count = block_count(block), right = (r + 1) % n, left = (r - 1 + n) % n;
    ring_out_.resize(bytes);
    ring_in_.resize(bytes);
    std::memcpy(ring_out_.data(), part(r - 1), bytes);
    for (int s = 0; s < n - 1; ++s) {
      char* in = s == n - 2 ? static_cast<char*>(recv) : ring_in_.data();
      MPI_Sendrecv(ring_out_.data(), count, mpi_type(type), right, 0, in, count, mpi_type(type), left, 0, comm_,
                   MPI_STATUS_IGNORE);
      add_into(in, part(r - 2 - s), block, type);
      if (s < n - 2) ring_out_.swap(ring_in_);
    }
  }
  // A ring as well (Note [Ring reduce-scatter]): block b starts at rank b and travels right.
  void allgather_inplace(void* recv, std::size_t block, WireType type) override {
    const int n = info_.size, r = info_.rank;
    if (n == 1) return;
    const std::size_t bytes = block * wire_bytes(type);
    const int count = block_count(block), right = (r + 1) % n, left = (r - 1 + n) % n;
    char* all = static_cast<char*>(recv);
    auto part = [&](int b) { return all + ring_offset(b, n, bytes); };
    for (int s = 0; s < n - 1; ++s)
      MPI_Sendrecv(part(r - s), count, mpi_type(type), right, 1, part(r - s - 1), count, mpi_type(type), left, 1, comm_,
                   MPI_STATUS_IGNORE);
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
  std::vector<char> ring_out_, ring_in_;  // the ring's partial sums in flight
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD); }
std::unique_ptr<Communicator> make_mpi_self_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_SELF); }

}  // namespace recvae
