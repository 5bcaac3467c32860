#pragma once
// Readers for raw interaction data (MovieLens, Netflix Prize, MSD taste profile, generic CSV, RecBole
// atomic .inter files) and the importer of an already split directory in the Mult-VAE / RecVAE
// reference format ("liang"). Every file may be gzip-compressed (recognised by its first bytes, not
// its name; multi-member files as gzip -d reads them); where a directory is searched for a file name,
// the name with .gz appended is found too. Every reader throws InputError("<file>[:<line>]: <problem>")
// on bad input, including truncated or corrupt gzip data.
#include <cstdint>
#include <string>
#include <vector>

#include "recvae/data/h5_dataset.h"

namespace recvae {

/// Raw interactions as parsed: one entry per input line, in input order, with dense ids.
struct Interactions {
  std::vector<std::uint32_t> user;      ///< dense user id of each interaction (index into user_names)
  std::vector<std::uint32_t> item;      ///< dense item id of each interaction (index into item_names)
  std::vector<float> value;             ///< rating / play count; empty means every value is 1
  std::vector<std::string> user_names;  ///< original id of each dense user id (order of first appearance)
  std::vector<std::string> item_names;  ///< original id of each dense item id (order of first appearance)
  std::string source;                   ///< input path(s), used to name the input in error messages

  std::int64_t size() const { return static_cast<std::int64_t>(user.size()); }
  std::int64_t num_users() const { return static_cast<std::int64_t>(user_names.size()); }
  std::int64_t num_items() const { return static_cast<std::int64_t>(item_names.size()); }
};

/// MovieLens ratings: `ratings.csv` (ML-20M/25M, header userId,movieId,rating,timestamp) or
/// `ratings.dat` (ML-1M/10M, `user::movie::rating::timestamp`), detected from the content. `path` is
/// the file or a directory holding ratings.csv or ratings.dat. value = rating.
Interactions read_movielens(const std::string& path, bool progress = true);

/// Netflix Prize: `combined_data_*.txt` files and/or `training_set/mv_*.txt` files (`MovieID:` lines
/// followed by `CustomerID,Rating,Date` lines). Each path is a file or a directory (searched for
/// training_set/, mv_*.txt, combined_data_*.txt; files read in sorted order). value = rating.
Interactions read_netflix(const std::vector<std::string>& paths, bool progress = true);

/// Echo Nest taste profile `train_triplets.txt` (`user<TAB>song<TAB>count`); a directory is searched
/// for train_triplets.txt. value = play count.
Interactions read_msd(const std::string& path, bool progress = true);

/// Generic CSV with a header line: `user,item[,value]` (further columns ignored); ids are arbitrary
/// strings, RFC 4180 quoting within a line. value = third column, or 1 when the file has two columns.
Interactions read_csv(const std::string& path, bool progress = true);

/// RecBole atomic `.inter` file (tab-separated, header `name:type` fields; columns user_id, item_id and
/// optional rating found by name); a directory must hold exactly one `*.inter`. value = rating or 1.
Interactions read_recbole(const std::string& path, bool progress = true);

/// Imports a directory in the reference-code layout (unique_sid.txt, [unique_uid.txt], train.csv,
/// validation_tr.csv, validation_te.csv, test_tr.csv, test_te.csv; CSVs with header uid,sid) unchanged:
/// row = uid (minus the split's minimum uid over its _tr and _te files), column = sid, values 1.
SplitData read_liang_dir(const std::string& dir);

/// Splits a list of paths given as "a,b,c" (empty pieces dropped).
std::vector<std::string> split_paths(const std::string& list);

}  // namespace recvae
