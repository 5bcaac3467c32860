#pragma once
// The core every model has, whatever trains it: its type, its module (the weights that are
// saved, broadcast and compared), its scores for held-out users and the numbers that fix its
// shape. How a model is trained is a second interface of its own (Note [Model interface] in
// model.cpp): step_model.h (passes of gradient steps), candidate_model.h (candidate fits),
// epoch_solved_model.h (solved epoch by epoch).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "recvae/batch/sparse_batch.h"

namespace recvae {

struct CsrMatrix;
class Communicator;
class SplitFile;
class ColumnShardedScores;

/// Where the model lives and what it is trained on.
struct ModelContext {
  std::int64_t items = 0;             ///< I: input and output width
  std::int64_t train_users = 0;       ///< training users in the whole data set
  std::int64_t local_users_lo = 0;    ///< this rank's training users: global rows [lo, hi)
  std::int64_t local_users_hi = 0;    ///< (per-user parameters are sized by them)
  torch::Device device{torch::kCPU};  ///< compute device
  const SplitFile* data = nullptr;    ///< the split file, open during construction only (ALS reads its item range)
  int rank = 0;                       ///< this process's rank
  int world_size = 1;                 ///< ranks in the job
  int local_ranks = 1;                ///< ranks on this node, which share its host memory
};

/// What a collective computation over every rank's training rows sees: a candidate fit, an
/// ALS epoch, RecVAE's ImplicitSLIM update.
struct FitContext {
  const CsrMatrix& train;      ///< this rank's training rows
  std::int64_t first_row = 0;  ///< global index of its first row
  Communicator& comm;          ///< all ranks (every fit is a collective)
  int threads = 1;             ///< host threads of this rank
  /// Polled by a fit that can stop part-way (Note [Resumable fits]); empty: never stop.
  std::function<bool()> should_stop;
};

/// Named figures a model reports (they go to metrics.jsonl).
using Figures = std::vector<std::pair<std::string, double>>;

/// What every model is: the part the evaluation, checkpoints and exports use.
class Model {
 public:
  virtual ~Model() = default;
  /// The `model.type` string.
  virtual std::string type() const = 0;
  /// Every replicated parameter and buffer: saved, broadcast from rank 0, compared across ranks.
  virtual torch::nn::Module& module() = 0;
  /// Ranking scores [rows, items] of held-out users from their fold-in rows (no dropout).
  virtual torch::Tensor scores(const SparseBatch& fold_in) = 0;
  /// Numbers that fix the parameter shapes; a checkpoint with other values is refused.
  virtual std::vector<std::pair<std::string, std::int64_t>> shape() const = 0;
  /// Non-null while the model's weights are split by item columns over the ranks (then scores()
  /// is not used: every rank scores every user for its own items; Note [Column-sharded scores]).
  virtual ColumnShardedScores* column_shards() { return nullptr; }
  /// Epochs that train.patience passes over: it neither stops within them nor counts them
  /// (RaCT: its actor's and critic's own phases; Note [Patience] in trainer.cpp).
  virtual int patience_start() const { return 0; }

  /// module().parameters(): the replicated parameters.
  std::vector<torch::Tensor> parameters() { return module().parameters(); }
};

}  // namespace recvae
