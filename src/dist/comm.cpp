#include "recvae/dist/comm.h"

#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "recvae/util/error.h"

namespace recvae {
namespace {
bool g_we_initialised = false;
}

std::size_t wire_bytes(WireType type) { return type == WireType::kBFloat16 ? 2 : 4; }

ProcessInfo init_process() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    // SERIALIZED: the gradient collectives of dist.bucket_mb run on a thread of their own while
    // the main thread makes no MPI call (Note [Overlapped gradient sync]).
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    g_we_initialised = true;
    // Errors on any rank must end the job with a message, never leave the others hanging.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  }
  ProcessInfo info;
  MPI_Comm_rank(MPI_COMM_WORLD, &info.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &info.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &info.local_rank);
  MPI_Comm_size(local, &info.local_size);
  MPI_Comm_free(&local);
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  info.serialized = level >= MPI_THREAD_SERIALIZED;
  return info;
}

void finalize_process() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (g_we_initialised && !finalised) MPI_Finalize();
}

std::vector<char> allgather_host_bytes(Communicator& comm, const void* data, std::size_t bytes) {
  const int size = comm.size(), rank = comm.rank();
  std::vector<std::int64_t> counts(static_cast<std::size_t>(size), 0);
  counts[static_cast<std::size_t>(rank)] = static_cast<std::int64_t>(bytes);
  comm.allreduce_max_host(counts.data(), counts.size());
  std::size_t total = 0;
  for (std::int64_t c : counts) total += static_cast<std::size_t>(c);
  std::vector<char> all(total);
  std::size_t offset = 0;
  for (int r = 0; r < size; ++r) {
    const std::size_t n = static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
    if (r == rank && n > 0) std::memcpy(all.data() + offset, data, n);
    if (n > 0) comm.broadcast_host(all.data() + offset, n, r);
    offset += n;
  }
  return all;
}

int run_guarded_job(const char* program, const std::function<int(std::unique_ptr<Communicator>& comm)>& body) {
  std::unique_ptr<Communicator> comm;
  int code = 0;
  std::string message;
  try {
    code = body(comm);
  } catch (const InputError& e) {
    code = kExitInputError;
    message = e.what();
  } catch (const std::exception& e) {
    code = kExitRuntimeError;
    message = e.what();
  }
  if (!message.empty()) {
    // One failing rank must end the whole job (MPI_Abort), never leave the others waiting.
    const ProcessInfo proc = comm ? comm->info() : init_process();
    if (proc.size > 1) {
      if (!comm) comm = make_mpi_communicator();
      comm->abort(code, message);
    }
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s%s\n", program, code == kExitInputError ? "error: " : "failure: ", message.c_str());
  }
  comm.reset();
  finalize_process();
  return code;
}

#ifndef RECVAE_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(int, double) {
  throw std::runtime_error("this build has no NCCL backend (configure with CUDA and NCCL available)");
}
bool nccl_available() { return false; }
#endif

}  // namespace recvae
