#include "recvae/dist/grad_sync.h"

#include <stdexcept>

namespace recvae {

// Note [Gradient sync]
// ~~~~~~~~~~~~~~~~~~~~
// Each optimiser group (encoder, decoder) owns one flat gradient buffer and one flat parameter
// buffer, and every parameter and its .grad are views into them. Backward accumulates straight
// into the gradient buffer, a step costs one collective over the whole group (an all-reduce, or
// a reduce-scatter and an all-gather of the parameters when the optimiser is sharded), and the
// optimiser updates the whole group (or a rank's slice of it) in a few kernels, with no packing
// copies. The loss is already divided by the global batch size (Note [World-size invariance]),
// so the collectives *sum*: no averaging by world size. The group that a pass does not step has
// requires_grad off, so backward computes no gradient for it (and in decoder passes builds no
// graph through the encoder at all).

void GradGroup::bind(std::vector<torch::Tensor> ps, const torch::Device& device, std::int64_t multiple) {
  params = std::move(ps);
  numel = 0;
  for (auto& p : params) numel += p.numel();
  const std::int64_t padded = (numel + multiple - 1) / multiple * multiple;
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  flat = torch::zeros({padded}, options);
  flat_param = torch::zeros({padded}, options);
  attach();
}

void GradGroup::attach() {
  torch::NoGradGuard guard;
  std::int64_t off = 0;
  for (auto& p : params) {
    if (p.scalar_type() != torch::kFloat32) throw std::logic_error("parameter groups hold float32 parameters only");
    auto value = flat_param.narrow(0, off, p.numel()).view(p.sizes());
    if (p.data_ptr() != value.data_ptr()) {
      value.copy_(p);
      p.set_data(value);
    }
    p.mutable_grad() = flat.narrow(0, off, p.numel()).view(p.sizes());
    off += p.numel();
  }
}

void GradGroup::set_requires_grad(bool on) {
  for (auto& p : params) p.set_requires_grad(on);
}

WireType wire_type_of(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kFloat32) return WireType::kFloat32;
  if (t.scalar_type() == torch::kBFloat16) return WireType::kBFloat16;
  throw std::logic_error("collectives move float32 or bfloat16 tensors only");
}

namespace {

// The MPI backend reads host memory: CUDA tensors go through a host copy.
bool staged(const torch::Tensor& t, const Communicator& comm) { return t.is_cuda() && comm.backend() == "mpi"; }

}  // namespace

void allreduce_tensor(torch::Tensor t, Communicator& comm) {
  if (comm.size() == 1) return;
  if (staged(t, comm)) {
    auto host = t.to(torch::kCPU).contiguous();
    comm.allreduce_sum(host.data_ptr(), static_cast<std::size_t>(host.numel()), wire_type_of(host));
    t.copy_(host);
  } else {
    comm.allreduce_sum(t.data_ptr(), static_cast<std::size_t>(t.numel()), wire_type_of(t));
  }
}

void reduce_scatter_tensor(const torch::Tensor& send, torch::Tensor recv, Communicator& comm) {
  if (send.numel() != recv.numel() * comm.size() || send.scalar_type() != recv.scalar_type())
    throw std::logic_error("reduce_scatter_tensor: send must hold size() blocks of recv's length and type");
  const auto block = static_cast<std::size_t>(recv.numel());
  if (staged(send, comm)) {
    auto host_send = send.to(torch::kCPU).contiguous();
    auto host_recv = torch::empty({recv.numel()}, host_send.options());
    comm.reduce_scatter_sum(host_send.data_ptr(), host_recv.data_ptr(), block, wire_type_of(host_send));
    recv.copy_(host_recv);
  } else {
    comm.reduce_scatter_sum(send.data_ptr(), recv.data_ptr(), block, wire_type_of(send));
  }
}

void allgather_tensor(torch::Tensor t, Communicator& comm) {
  if (comm.size() == 1) return;
  const auto block = static_cast<std::size_t>(t.numel() / comm.size());
  if (staged(t, comm)) {
    auto host = t.to(torch::kCPU).contiguous();
    comm.allgather_inplace(host.data_ptr(), block, wire_type_of(host));
    t.copy_(host);
  } else {
    comm.allgather_inplace(t.data_ptr(), block, wire_type_of(t));
  }
}

void broadcast_tensor(torch::Tensor t, Communicator& comm) {
  torch::NoGradGuard guard;
  if (staged(t, comm)) {
    auto host = t.to(torch::kCPU).contiguous();
    comm.broadcast(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()), 0);
    t.copy_(host);
  } else {
    comm.broadcast(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()), 0);
  }
}

}  // namespace recvae
