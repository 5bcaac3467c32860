#include "recvae/dist/grad_sync.h"

namespace recvae {

// Note [Gradient sync]
// ~~~~~~~~~~~~~~~~~~~~
// Each optimiser group (encoder, decoder) owns one flat gradient buffer, and every parameter's
// .grad is a view into it, so backward accumulates straight into the buffer and a step costs one
// all-reduce of the whole group, with no packing copies. The loss is already divided by the
// global batch size (Note [World-size invariance]), so the all-reduce *sums*: no averaging by
// world size. The group that a pass does not step has requires_grad off, so backward computes
// no gradient for it (and in decoder passes builds no graph through the encoder at all).

void GradGroup::bind(std::vector<torch::Tensor> ps, const torch::Device& device) {
  params = std::move(ps);
  std::int64_t total = 0;
  for (auto& p : params) total += p.numel();
  flat = torch::zeros({total}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  attach();
}

void GradGroup::attach() {
  std::int64_t off = 0;
  for (auto& p : params) {
    p.mutable_grad() = flat.narrow(0, off, p.numel()).view(p.sizes());
    off += p.numel();
  }
}

void GradGroup::set_requires_grad(bool on) {
  for (auto& p : params) p.set_requires_grad(on);
}

void allreduce_group(GradGroup& g, Communicator& comm) { allreduce_tensor(g.flat, comm); }

void allreduce_tensor(torch::Tensor t, Communicator& comm) {
  if (comm.size() == 1) return;
  if (t.is_cuda() && comm.backend() == "mpi") {  // MPI backend with CUDA tensors: stage on host
    auto host = t.to(torch::kCPU).contiguous();
    comm.allreduce_sum(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()));
    t.copy_(host);
  } else {
    comm.allreduce_sum(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()));
  }
}

void broadcast_tensor(torch::Tensor t, Communicator& comm) {
  torch::NoGradGuard guard;
  if (t.is_cuda() && comm.backend() == "mpi") {
    auto host = t.to(torch::kCPU).contiguous();
    comm.broadcast(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()), 0);
    t.copy_(host);
  } else {
    comm.broadcast(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()), 0);
  }
}

}  // namespace recvae
