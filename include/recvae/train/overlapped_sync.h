#pragma once
// Gradient collectives that start while backward still runs (Note [Overlapped gradient sync] in
// overlapped_sync.cpp), bucket by bucket (Note [Gradient buckets] in group_optimizer.cpp).
#include <cstddef>
#include <memory>
#include <vector>

namespace recvae {

class Communicator;
class GroupOptimizer;
struct CommTally;
struct GradGroup;

/// Hands each bucket of a step's gradients to a communication thread as soon as backward has
/// produced the gradients of all its parameters; the step waits for the last collective.
class OverlappedSync {
 public:
  /// Hooks the parameters of every group `g` with an optimiser (`optimizers[g]` null: none, e.g.
  /// a per-user group); `groups` and `optimizers` outlive this object.
  OverlappedSync(const std::vector<GradGroup*>& groups, const std::vector<GroupOptimizer*>& optimizers,
                 Communicator& comm);
  /// Stops the communication thread and removes the hooks.
  ~OverlappedSync();
  OverlappedSync(const OverlappedSync&) = delete;
  OverlappedSync& operator=(const OverlappedSync&) = delete;

  /// Before a step's backward: the buckets of the groups with `stepped[g]` are awaited from now on.
  void begin(const std::vector<bool>& stepped);
  /// After backward: hands over the buckets backward did not (parameters without a gradient, a
  /// rank without users in the batch), waits for every collective of the step, adds what they
  /// moved to `tally` and rethrows a failure of the communication thread.
  void finish(CommTally& tally);

  struct State;  ///< what the hooks, the communication thread and the step share (overlapped_sync.cpp)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace recvae
