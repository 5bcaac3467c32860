#pragma once
// Top-k recommendations from a finished run (recvae_recommend): the run's best model scores
// users' histories, their own items excluded. Ranks split the users; rank 0 writes the file.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recvae/data/csr.h"

namespace recvae {

class Communicator;
class Model;
class SplitFile;

/// The users to recommend for: one history row per user over the model's items, with ids.
struct UserHistories {
  CsrMatrix rows;                         ///< one row per user, binary, columns = the model's items
  std::vector<std::string> user_ids;      ///< original id of each row
  std::int64_t unknown_interactions = 0;  ///< interactions skipped: their item is not the model's
  std::int64_t unknown_items = 0;         ///< distinct item ids among them
};

/// The held-out users of a split file ("validation" or "test"): their fold-in rows, and their
/// ids ("<split>:<row>" when the file stores none).
UserHistories held_out_histories(const SplitFile& file, const std::string& split);

/// Histories read from a raw `csv` file (user,item[,value] with original ids, as recvae_prep
/// reads it: header, quoting, gzip): items not in `item_ids` are counted and skipped; a user
/// none of whose items is known is an InputError (nothing to fold in).
UserHistories csv_histories(const std::string& path, const std::vector<std::string>& item_ids);

/// Top-k lists in user order; a user gets fewer than k when fewer items are left unseen.
struct TopK {
  std::vector<std::int64_t> user;  ///< row of each entry in its UserHistories
  std::vector<std::int32_t> rank;  ///< 1-based position in the user's list
  std::vector<std::int32_t> item;  ///< item column
  std::vector<float> score;        ///< the model's score

  /// Number of entries.
  std::int64_t size() const { return static_cast<std::int64_t>(user.size()); }
};

/// A finished run's best model, loaded for scoring.
class Recommender {
 public:
  /// Loads RUN_DIR/config.yaml and RUN_DIR/best_model.pt onto `device` ("cpu", "cuda", "auto").
  /// `data_path` (empty: the run's data.path) is the split file that names the items. InputError
  /// on a missing run or model file, or a model that does not fit the split's items.
  Recommender(const std::string& run_dir, const std::string& data_path, const std::string& device, int threads);
  ~Recommender();
  Recommender(const Recommender&) = delete;
  Recommender& operator=(const Recommender&) = delete;

  /// The run's model.type.
  std::string model_type() const;
  /// The split file the items come from.
  const std::string& data_path() const;
  /// Original item ids, in column order.
  const std::vector<std::string>& item_ids() const;
  /// The loaded model.
  Model& model();
  /// Top-`k` items of rows [lo, hi) of `histories` (rows' own items excluded), `batch` rows
  /// scored at a time; equal scores list the lower item id first, as the evaluation ranks them
  /// (Note [Ties in the lists]). Entries' `user` are rows of `histories`.
  TopK recommend(const CsrMatrix& histories, std::int64_t lo, std::int64_t hi, int k, std::int64_t batch);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Every rank's entries concatenated in rank order, on every rank (a collective).
TopK allgather_top_k(const TopK& local, Communicator& comm);

/// Writes `recs` to `path`: CSV (header user,rank,item,score; RFC 4180 quoting where an id needs
/// it) or, for a .h5 path, HDF5 datasets user, rank, item (strings) and score. Through a
/// temporary file and a rename: a failed write leaves no file.
void write_recommendations(const std::string& path, const TopK& recs, const std::vector<std::string>& user_ids,
                           const std::vector<std::string>& item_ids);

}  // namespace recvae
