#include "recvae/train/overlapped_sync.h"

#include <torch/torch.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "recvae/dist/comm.h"
#include "recvae/dist/grad_sync.h"
#include "recvae/train/group_optimizer.h"

namespace recvae {

// Note [Overlapped gradient sync]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// With dist.bucket_mb > 0 the gradient collectives of a step start while backward is still
// running. Backward visits the layers last to first, so the buckets at the end of a group's
// buffer (Note [Gradient buckets] in group_optimizer.cpp) are complete first. A post-hook on each
// parameter's gradient accumulator (the autograd node that adds a gradient into .grad, i.e. into
// the flat buffer) counts down the parameters a bucket still waits for, and a bucket whose count
// reaches zero is staged for the wire on the computing thread (bf16 rounding) and handed to a
// communication thread, which runs the buckets' collectives one at a time in a fixed
// order: every stepped group in group order, and in each its buckets last to first
// (GroupOptimizer::reduction_order). The order is the same on every rank whatever the order in
// which backward finishes buckets there (the thread waits for the next bucket of the list, not
// for any ready one), so all ranks issue the same collectives in the same order, as blocking
// collectives require. A rank without users in the batch runs no backward and hands everything
// over at the end of the step. The step then waits for the thread before the penalties and the
// optimiser touch the buffers, so the update and its result are those of the unbucketed step
// (up to the order of additions in a sum over three or more ranks).
//
// Why a thread and not non-blocking collectives on the compute thread: Open MPI progresses
// MPI_Iallreduce and its kind only inside MPI calls, and backward makes none for hundreds of
// milliseconds at a time, so the transfer would mostly happen in the final wait. The thread makes
// blocking calls while the compute thread makes none, which MPI_THREAD_SERIALIZED allows
// (init_process asks for it). On GPUs the hook runs when the gradient's kernels are enqueued, not
// done: it records a CUDA event on the compute stream (Communicator::compute_mark), and the NCCL
// backend enqueues the bucket's collective on a stream of its own after waiting for that event
// (Communicator::wait_for), so the transfer overlaps the rest of backward on the device.
//
// What it buys depends on the model: only the gradients that backward produces before its last
// layer can travel early. The breakdown's comm (Note [Step breakdown]) then counts the wait after
// backward, i.e. the exposed part of the communication, and CommTally::overlapped the buckets
// handed over during backward (docs/performance.md, "Overlap with backward").

struct OverlappedSync::State {
  explicit State(Communicator& c) : comm(c) {}

  Communicator& comm;
  std::vector<GroupOptimizer*> opts;
  std::vector<std::vector<int>> waits;    // per group and bucket: the parameters it holds
  std::vector<std::vector<int>> pending;  // per group and bucket: those without a gradient yet this step
  std::vector<std::vector<char>> ready;
  std::vector<std::vector<std::uint64_t>> marks;
  std::vector<bool> stepped;
  std::vector<std::pair<std::size_t, std::size_t>> order;  // (group, bucket), this step's collectives
  std::size_t next = 0;                                    // the first of `order` not done
  bool armed = false, in_step = false, stop = false;
  CommTally tally;  // what this step's collectives moved; overlapped: buckets that backward handed over
  std::exception_ptr error;
  std::mutex mu;
  std::condition_variable cv;
  std::thread worker;
  // The hooks, to remove them again: each accumulator and its hook's key.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, std::uintptr_t>> hooks;

  // Called under `mu`, on the thread that computed the bucket's gradients.
  void hand_over(std::size_t g, std::size_t b) {
    opts[g]->stage_bucket(b);
    marks[g][b] = comm.compute_mark();
    ready[g][b] = 1;
  }

  void parameter_done(std::size_t g, const std::vector<std::size_t>& buckets) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || !stepped[g]) return;
    bool any = false;
    for (const std::size_t b : buckets)
      if (pending[g][b] > 0 && --pending[g][b] == 0) {
        hand_over(g, b);
        ++tally.overlapped;
        any = true;
      }
    if (any) cv.notify_all();
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock,
              [&] { return stop || (in_step && next < order.size() && ready[order[next].first][order[next].second]); });
      if (stop) return;
      const auto [g, b] = order[next];
      const std::uint64_t mark = marks[g][b];
      lock.unlock();
      CommTally moved;
      std::exception_ptr failed;
      try {
        comm.wait_for(mark);
        opts[g]->exchange_bucket(b, moved);
      } catch (...) {
        failed = std::current_exception();
      }
      lock.lock();
      tally += moved;
      if (failed) {
        error = failed;
        next = order.size();  // the other ranks end the job; issue nothing more
      } else {
        ++next;
      }
      cv.notify_all();
    }
  }
};

namespace {

using torch::autograd::variable_list;

// Tells the shared state that a parameter's gradient is in its buffer.
class GradientReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  GradientReadyHook(std::weak_ptr<OverlappedSync::State> state, std::size_t group, std::vector<std::size_t> buckets)
      : state_(std::move(state)), group_(group), buckets_(std::move(buckets)) {}
  variable_list operator()(const variable_list& outputs, const variable_list& /*inputs*/) override {
    if (auto s = state_.lock()) s->parameter_done(group_, buckets_);
    return outputs;
  }

 private:
  std::weak_ptr<OverlappedSync::State> state_;
  std::size_t group_;
  std::vector<std::size_t> buckets_;
};

}  // namespace

OverlappedSync::OverlappedSync(const std::vector<GradGroup*>& groups, const std::vector<GroupOptimizer*>& optimizers,
                               Communicator& comm)
    : state_(std::make_shared<State>(comm)) {
  State& s = *state_;
  s.opts = optimizers;
  const std::size_t n = groups.size();
  s.waits.resize(n);
  s.pending.resize(n);
  s.ready.resize(n);
  s.marks.resize(n);
  s.stepped.assign(n, false);
  for (std::size_t g = 0; g < n; ++g) {
    if (!optimizers[g]) continue;
    const std::vector<GradBucket>& buckets = optimizers[g]->buckets();
    s.waits[g].assign(buckets.size(), 0);
    s.ready[g].assign(buckets.size(), 0);
    s.marks[g].assign(buckets.size(), 0);
    std::int64_t off = 0;
    for (const torch::Tensor& p : groups[g]->params) {
      const std::int64_t end = off + p.numel();
      std::vector<std::size_t> mine;
      for (std::size_t b = 0; b < buckets.size(); ++b)
        if (buckets[b].lo < end && off < buckets[b].lo + buckets[b].len) mine.push_back(b);
      for (const std::size_t b : mine) ++s.waits[g][b];
      off = end;
      auto accumulator = torch::autograd::impl::grad_accumulator(p);
      if (!accumulator) throw std::logic_error("a parameter without a gradient accumulator (not a leaf)");
      const std::uintptr_t key =
          accumulator->add_post_hook(std::make_unique<GradientReadyHook>(state_, g, std::move(mine)));
      s.hooks.emplace_back(std::move(accumulator), key);
    }
  }
}

OverlappedSync::~OverlappedSync() {
  State& s = *state_;
  bool in_flight = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stop = true;
    in_flight = s.in_step && s.next < s.order.size();
  }
  s.cv.notify_all();
  // A step left by an exception (a non-finite loss, say) may have a collective in flight that
  // waits for ranks which will never join it; joining would hang the rank instead of letting the
  // exception end the job (run_guarded_job aborts it). The thread keeps the state alive.
  if (s.worker.joinable()) {
    if (in_flight)
      s.worker.detach();
    else
      s.worker.join();
  }
  for (auto& [accumulator, key] : s.hooks) accumulator->del_post_hook(key);
}

void OverlappedSync::begin(const std::vector<bool>& stepped) {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.worker.joinable()) s.worker = std::thread([state = state_] { state->run(); });
  s.order.clear();
  for (std::size_t g = 0; g < s.opts.size(); ++g) {
    s.stepped[g] = g < stepped.size() && stepped[g] && s.opts[g];
    if (!s.stepped[g]) continue;
    s.pending[g] = s.waits[g];
    std::fill(s.ready[g].begin(), s.ready[g].end(), 0);
    for (const std::size_t b : s.opts[g]->reduction_order()) s.order.emplace_back(g, b);
  }
  s.next = 0;
  s.tally = CommTally{};
  s.error = nullptr;
  s.in_step = true;
  s.armed = true;
}

void OverlappedSync::finish(CommTally& tally) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.armed = false;
  for (const auto& [g, b] : s.order)
    if (!s.ready[g][b]) s.hand_over(g, b);
  s.cv.notify_all();
  s.cv.wait(lock, [&] { return s.next >= s.order.size(); });
  s.in_step = false;
  tally += s.tally;
  if (s.error) std::rethrow_exception(s.error);
}

}  // namespace recvae
