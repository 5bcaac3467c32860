#pragma once
// Note [Snapshot check] (replica_check.cpp): every rank must hold the same replicated weights.
namespace recvae {

class Communicator;
class Model;

/// Throws std::runtime_error unless every rank holds bit-identical replicated parameters of
/// `model` (a collective: all ranks must call it).
void check_replicas_in_sync(Model& model, Communicator& comm);

}  // namespace recvae
