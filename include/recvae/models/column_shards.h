#pragma once
// A model whose weights are split by item columns over the ranks (EASE's distributed solve):
// every rank scores any user, for its own items only (Note [Column-sharded scores] in
// eval/sharded_top_k.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "recvae/data/csr.h"

namespace recvae {

/// The scoring side of a column-sharded model.
class ColumnShardedScores {
 public:
  virtual ~ColumnShardedScores() = default;
  /// Global items of this rank's columns, ascending.
  virtual const std::vector<std::int64_t>& local_items() const = 0;
  /// This rank's part of the weights: [local_items().size(), items], row c holding column
  /// local_items()[c] of the items x items matrix that weights_name() names in module().
  virtual const torch::Tensor& local_weights() const = 0;
  /// The name of the split matrix among the model's weights (EASE: "B").
  virtual std::string weights_name() const = 0;
  /// Scores [rows.rows, local_items().size()] (float32, host) of the users whose fold-in rows
  /// are `rows` (over every item), for this rank's items.
  virtual torch::Tensor local_scores(const CsrMatrix& rows, int threads) = 0;
};

}  // namespace recvae
