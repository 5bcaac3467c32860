#pragma once
// Which device a rank computes on and which communicator backend the job uses.
#include <torch/torch.h>

#include <memory>

#include "recvae/dist/comm.h"
#include "recvae/util/config.h"

namespace recvae {

/// The device `dist` asks for on this rank: the GPU of its local rank when it has one; the CPU
/// with dist.device=cpu, on a CPU-only node, or with dist.allow_cpu. InputError otherwise.
torch::Device pick_device(const DistConfig& dist, const ProcessInfo& proc);

/// The communicator `config.dist` asks for: NCCL when every rank computes on a GPU and NCCL is
/// built (backend auto|nccl), MPI otherwise. All ranks agree on it before any is created.
std::unique_ptr<Communicator> make_communicator(const Config& config);

}  // namespace recvae
