#include "recvae/dist/device_select.h"

#include "recvae/util/error.h"

namespace recvae {

torch::Device pick_device(const DistConfig& dist, const ProcessInfo& proc) {
  if (dist.device == "cpu") return torch::kCPU;
  const int count = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (proc.local_rank < count) return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(proc.local_rank));
  // No GPU of its own: fine on a CPU-only node with device auto; otherwise only when allowed.
  if (dist.device == "auto" && (count == 0 || dist.allow_cpu)) return torch::kCPU;
  throw InputError("rank " + std::to_string(proc.rank) + " (local rank " + std::to_string(proc.local_rank) + " of " +
                   std::to_string(proc.local_size) + " on its node) has no GPU of its own (" + std::to_string(count) +
                   " visible); start at most one rank per GPU, or set dist.allow_cpu=true " + "or dist.device=cpu");
}

std::unique_ptr<Communicator> make_communicator(const Config& config) {
  // All ranks must pick the same backend, so the choice is agreed on before any is created.
  auto mpi = make_mpi_communicator();
  std::int64_t gpu[2] = {0, 0};
  std::string error;
  try {
    gpu[0] = gpu[1] = pick_device(config.dist, mpi->info()).is_cuda() ? 1 : 0;
  } catch (const InputError& e) {
    error = e.what();
    gpu[0] = 2;  // flag: this rank cannot start
  }
  mpi->allreduce_max_host(&gpu[0], 1);
  mpi->allreduce_min_host(&gpu[1], 1);
  if (!error.empty()) throw InputError(error);
  if (gpu[0] == 2) throw InputError("another rank has no usable device (see its message)");
  const bool all_gpu = gpu[1] == 1;
  if (config.dist.backend == "nccl" && !all_gpu)
    throw InputError("config key 'dist.backend': nccl needs a GPU on every rank");
  if (config.dist.backend == "nccl" && !nccl_available())
    throw InputError("config key 'dist.backend': this build has no NCCL backend");
  if (all_gpu && config.dist.backend != "mpi" && nccl_available())
    return make_nccl_communicator(mpi->info().local_rank, config.dist.timeout_seconds);
  return mpi;
}

}  // namespace recvae
