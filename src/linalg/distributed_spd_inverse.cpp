#include "recvae/linalg/distributed_spd_inverse.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

#include "recvae/dist/comm.h"
#include "recvae/linalg/thread_count.h"

#ifdef RECVAE_HAVE_SCALAPACK
#include <mpi.h>

// The BLACS and ScaLAPACK/PBLAS routines used here (Debian's libscalapack-openmpi: Fortran
// symbols with 32-bit integers, plus the BLACS' C entry points).
extern "C" {
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int* context, const char* order, int rows, int cols);
void Cblacs_gridinfo(int context, int* rows, int* cols, int* row, int* col);
void Cblacs_gridexit(int context);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb, const int* rsrc, const int* csrc,
               const int* context, const int* lld, int* info);
void pspotrf_(const char* uplo, const int* n, float* a, const int* ia, const int* ja, const int* desc, int* info);
void pspotri_(const char* uplo, const int* n, float* a, const int* ia, const int* ja, const int* desc, int* info);
void pdpotrf_(const char* uplo, const int* n, double* a, const int* ia, const int* ja, const int* desc, int* info);
void pdpotri_(const char* uplo, const int* n, double* a, const int* ia, const int* ja, const int* desc, int* info);
void pstran_(const int* m, const int* n, const float* alpha, const float* a, const int* ia, const int* ja,
             const int* desca, const float* beta, float* c, const int* ic, const int* jc, const int* descc);
void pdtran_(const int* m, const int* n, const double* alpha, const double* a, const int* ia, const int* ja,
             const int* desca, const double* beta, double* c, const int* ic, const int* jc, const int* descc);
}
#endif

namespace recvae {

bool scalapack_available() {
#ifdef RECVAE_HAVE_SCALAPACK
  return true;
#else
  return false;
#endif
}

#ifdef RECVAE_HAVE_SCALAPACK
namespace {

// A 1 x N BLACS grid over the job's ranks, released when it goes out of scope. The
// Communicator interface is backend-neutral, so the MPI communicator is the one every backend
// of this project runs its control collectives on: MPI_COMM_WORLD, or MPI_COMM_SELF for the
// one-rank communicator that tests compare against.
class BlacsGrid {
 public:
  explicit BlacsGrid(Communicator& comm) {
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm mpi = comm.size() == 1 ? MPI_COMM_SELF : MPI_COMM_WORLD;
    if (comm.size() != 1 && comm.size() != world)
      throw std::logic_error("invert_spd_distributed: the communicator is neither MPI_COMM_WORLD nor MPI_COMM_SELF");
    handle_ = Csys2blacs_handle(mpi);
    context_ = handle_;
    Cblacs_gridinit(&context_, "Row", 1, comm.size());
    int rows = 0, cols = 0, row = 0, col = 0;
    Cblacs_gridinfo(context_, &rows, &cols, &row, &col);
    if (rows != 1 || cols != comm.size() || col != comm.rank())
      throw std::logic_error("invert_spd_distributed: BLACS placed rank " + std::to_string(comm.rank()) +
                             " at column " + std::to_string(col) + " of a " + std::to_string(rows) + " x " +
                             std::to_string(cols) + " grid");
  }
  ~BlacsGrid() {
    Cblacs_gridexit(context_);
    Cfree_blacs_system_handle(handle_);
  }
  BlacsGrid(const BlacsGrid&) = delete;
  BlacsGrid& operator=(const BlacsGrid&) = delete;
  int context() const { return context_; }

 private:
  int handle_ = 0, context_ = 0;
};

std::array<int, 9> descriptor(std::int64_t rows, std::int64_t cols, std::int64_t block, int context) {
  std::array<int, 9> d{};
  const int m = static_cast<int>(rows), n = static_cast<int>(cols), nb = static_cast<int>(block), zero = 0;
  const int lld = std::max(1, m);
  int info = 0;
  descinit_(d.data(), &m, &n, &nb, &nb, &zero, &zero, &context, &lld, &info);
  if (info != 0) throw std::logic_error("descinit: argument " + std::to_string(-info) + " invalid");
  return d;
}

// One body for both precisions: the routines of the precision come in as arguments.
template <typename T, typename Factor, typename Transpose>
std::int64_t invert(torch::Tensor& a, const BlockCyclicColumns& layout, Communicator& comm, int threads, Factor potrf,
                    Factor potri, Transpose tran) {
  const BlacsGrid grid(comm);
  const ThreadCount thread_count(threads);  // OpenBLAS under PBLAS follows the OpenMP pool
  const std::int64_t n = layout.n, nb = layout.block;
  const auto desc = descriptor(n, n, nb, grid.context());
  const int order = static_cast<int>(n), one = 1;
  const char lower = 'L';
  T* p = a.data_ptr<T>();
  int info = 0;
  potrf(&lower, &order, p, &one, &one, desc.data(), &info);
  if (info == 0) potri(&lower, &order, p, &one, &one, desc.data(), &info);
  std::int64_t failed = info;
  comm.allreduce_max_host(&failed, 1);  // every rank returns the same answer
  if (failed < 0) throw std::logic_error("invert_spd_distributed: ScaLAPACK argument " + std::to_string(-failed));
  if (failed > 0) return failed;
  // potri leaves the inverse in the lower triangle: column j holds rows i >= j. Rows i < j of
  // column j are row j of the columns i < j, held by other ranks, so the upper triangle is
  // filled a round of ranks x nb columns at a time: T = A[R, :]^T (n x |R|, laid out like the
  // columns R themselves, so each rank's part of T is its own columns of R), then the entries
  // above the diagonal are copied from T. One round's buffer is n x nb per rank.
  const std::int64_t round = nb * layout.ranks;
  auto t = torch::empty({nb, n}, a.options());
  const T alpha = 1, beta = 0;
  for (std::int64_t r0 = 0; r0 < n; r0 += round) {
    const std::int64_t width = std::min(round, n - r0);
    const auto tdesc = descriptor(n, width, nb, grid.context());
    const int rows = static_cast<int>(n), cols = static_cast<int>(width), ia = static_cast<int>(r0) + 1;
    tran(&rows, &cols, &alpha, p, &ia, &one, desc.data(), &beta, t.data_ptr<T>(), &one, &one, tdesc.data());
    const BlockCyclicColumns part(width, nb, layout.ranks, layout.rank);
    for (std::int64_t c = 0; c < part.local_columns(); ++c) {
      const std::int64_t j = r0 + part.global_column(c);
      std::copy_n(t.data_ptr<T>() + c * n, j, p + layout.local_index(j) * n);
    }
  }
  return 0;
}

}  // namespace
#endif

std::int64_t invert_spd_distributed(torch::Tensor& a, const BlockCyclicColumns& layout, Communicator& comm,
                                    int threads) {
  if (a.dim() != 2 || a.size(0) != layout.local_columns() || a.size(1) != layout.n || !a.is_contiguous() ||
      a.is_cuda() || layout.ranks != comm.size() || layout.rank != comm.rank())
    throw std::logic_error("invert_spd_distributed: expects this rank's [local columns, n] host block");
  if (layout.local_columns() * layout.n > kScalapackMaxLocalElements)
    throw std::invalid_argument("invert_spd_distributed: " + std::to_string(layout.local_columns()) + " x " +
                                std::to_string(layout.n) + " elements on one rank exceed ScaLAPACK's 32-bit indices");
#ifdef RECVAE_HAVE_SCALAPACK
  if (a.scalar_type() == torch::kFloat64) return invert<double>(a, layout, comm, threads, pdpotrf_, pdpotri_, pdtran_);
  if (a.scalar_type() == torch::kFloat32) return invert<float>(a, layout, comm, threads, pspotrf_, pspotri_, pstran_);
  throw std::logic_error("invert_spd_distributed: float32 or float64 only");
#else
  (void)threads;
  throw std::logic_error("invert_spd_distributed: this build has no ScaLAPACK");
#endif
}

}  // namespace recvae
