#include "recvae/train/replica_check.h"

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/models/model.h"

namespace recvae {

// Note [Snapshot check]
// ~~~~~~~~~~~~~~~~~~~~~
// Replicas stay identical only if every rank applied the same updates. After each encoder_old
// refresh (and each other update a model asks to check), every rank reduces a per-tensor
// fingerprint (sum and sum of squares in double, as raw bit patterns) with MAX and MIN; any
// difference means some rank diverged (a bug, a bad node, a perturbed parameter) and the job
// stops rather than train a silently inconsistent model.
void check_replicas_in_sync(Model& model, Communicator& comm) {
  std::vector<std::int64_t> fp;
  {
    torch::NoGradGuard guard;
    for (auto& p : model.parameters()) {
      auto d = p.to(torch::kFloat64);
      for (double v : {d.sum().item<double>(), (d * d).sum().item<double>()}) {
        std::int64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        fp.push_back(bits);
      }
    }
  }
  auto hi = fp, lo = fp;
  comm.allreduce_max_host(hi.data(), hi.size());
  comm.allreduce_min_host(lo.data(), lo.size());
  if (hi != lo) {
    size_t i = 0;
    while (hi[i] == lo[i]) ++i;
    throw std::runtime_error("replica check failed: ranks hold different parameters (tensor " + std::to_string(i / 2) +
                             " of the model differs across ranks)");
  }
}

}  // namespace recvae
