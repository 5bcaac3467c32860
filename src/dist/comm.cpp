#include "recvae/dist/comm.h"

#include <mpi.h>

#include <stdexcept>

namespace recvae {
namespace {
bool g_we_initialised = false;
}

ProcessInfo init_process() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
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
  return info;
}

void finalize_process() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (g_we_initialised && !finalised) MPI_Finalize();
}

#ifndef RECVAE_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(int, double) {
  throw std::runtime_error("this build has no NCCL backend (configure with CUDA and NCCL available)");
}
bool nccl_available() { return false; }
#endif

}  // namespace recvae
