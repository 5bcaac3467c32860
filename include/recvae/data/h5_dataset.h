#pragma once
// The preprocessed split file (one HDF5 file per data set); format in data/README.md.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "recvae/data/csr.h"

namespace recvae {

/// Names of the five CSR groups of a split file.
namespace split {
inline constexpr const char* kTrain = "train";
inline constexpr const char* kValidationFoldIn = "validation/fold_in";
inline constexpr const char* kValidationHoldout = "validation/holdout";
inline constexpr const char* kTestFoldIn = "test/fold_in";
inline constexpr const char* kTestHoldout = "test/holdout";
/// The item-major (CSC) copy of train, for the item steps of ALS (optional in a file).
inline constexpr const char* kTrainItemMajor = "train_csc";
}  // namespace split

/// Format version written to the file's root attribute `format_version`.
constexpr int kFormatVersion = 1;

/// The protocol parameters stored as root attributes (so a file says how it was made).
struct ProtocolInfo {
  std::string source_format;   ///< movielens, netflix, msd, csv, liang, synthetic
  double threshold = 0.0;      ///< keep interactions with value > threshold (NaN/none: all)
  bool has_threshold = false;  ///< false: every interaction kept
  std::int64_t min_items_per_user = 0;
  std::int64_t min_users_per_item = 0;
  std::int64_t heldout_users = 0;  ///< n: validation users = test users = n
  double holdout_fraction = 0.2;
  std::uint64_t seed = 0;
};

/// Everything a split file holds, in memory (used by writers: prep, synth, tests).
struct SplitData {
  CsrMatrix train, validation_fold_in, validation_holdout, test_fold_in, test_holdout;
  std::vector<std::string> item_ids;             ///< original id of each column
  std::vector<std::string> train_user_ids;       ///< original id of each train row
  std::vector<std::string> validation_user_ids;  ///< original id of each validation row
  std::vector<std::string> test_user_ids;        ///< original id of each test row
  ProtocolInfo protocol;
};

/// Writes `data` to `path` through `path.tmp.<pid>` and a rename: a failed write leaves no file.
/// Validates every matrix first (InputError on inconsistency, e.g. different item counts).
void write_split_file(const std::string& path, const SplitData& data);

/// Adds the item-major copy of /train (group `train_csc`, anndata csc_matrix encoding) to an
/// existing split file, through a copy and a rename: a failure leaves the file as it was.
/// Throws InputError when the file already has one.
void add_item_major_copy(const std::string& path);

/// Read access to a split file; each reader opens the file itself and reads row ranges only.
class SplitFile {
 public:
  /// Opens and checks the layout (groups, attributes, format version, one item count, fold-in and
  /// holdout row counts equal). Throws InputError naming the file and the problem.
  explicit SplitFile(const std::string& path);
  ~SplitFile();
  SplitFile(const SplitFile&) = delete;
  SplitFile& operator=(const SplitFile&) = delete;

  /// Path given at construction.
  const std::string& path() const { return path_; }
  /// Number of items (columns), common to all splits.
  std::int64_t num_items() const { return num_items_; }
  /// Number of rows of a split (one of the split:: names).
  std::int64_t num_rows(const std::string& split) const;
  /// indptr[lo .. hi] (hi - lo + 1 entries, absolute offsets) of a split: lets callers balance
  /// shards by non-zeros without reading indices or data.
  std::vector<std::int64_t> read_indptr(const std::string& split, std::int64_t lo, std::int64_t hi) const;
  /// Rows [lo, hi) of a split as a standalone CSR matrix (hyperslab reads of indptr, then of
  /// indices/data). Validates what it reads; InputError names file, split and problem.
  CsrMatrix read_rows(const std::string& split, std::int64_t lo, std::int64_t hi) const;
  /// Whether the file holds the item-major copy of train (written by recvae_prep, or added to an
  /// older file by `recvae_prep --add-csc FILE`).
  bool has_item_major() const { return has_item_major_; }
  /// indptr[lo .. hi] of the item-major copy (absolute offsets): the training users of items [lo, hi).
  std::vector<std::int64_t> read_item_indptr(std::int64_t lo, std::int64_t hi) const;
  /// Items [lo, hi) of train as rows of a standalone matrix whose columns are the training
  /// users. Throws InputError when the file has no item-major copy, saying how to add one.
  CsrMatrix read_item_columns(std::int64_t lo, std::int64_t hi) const;
  /// Original item ids (column order).
  std::vector<std::string> read_item_ids() const;
  /// Original user ids of the rows of "train", "validation" or "test" (empty when not stored).
  std::vector<std::string> read_user_ids(const std::string& which) const;
  /// Protocol attributes.
  ProtocolInfo read_protocol() const;

 private:
  std::string path_;
  std::int64_t num_items_ = 0;
  long long file_id_ = -1;  // hid_t, kept opaque so this header needs no HDF5 include
  std::map<std::string, std::int64_t> rows_;
  bool has_item_major_ = false;
  CsrMatrix read_compressed(const std::string& group, std::int64_t lo, std::int64_t hi, std::int64_t minor) const;
  std::vector<std::int64_t> read_group_indptr(const std::string& group, std::int64_t majors, std::int64_t lo,
                                              std::int64_t hi) const;
};

}  // namespace recvae
