// HDF5 split files (format: data/README.md). C API only; every failure becomes an InputError that
// names the file, the split and the problem.
#include "recvae/data/h5_dataset.h"

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "recvae/data/h5_io.h"
#include "recvae/util/error.h"

namespace recvae {

using namespace h5;  // NOLINT: this file is the split format over the helper layer

namespace {

const char* const kAllSplits[] = {split::kTrain, split::kValidationFoldIn, split::kValidationHoldout,
                                  split::kTestFoldIn, split::kTestHoldout};

/// `m` as an anndata sparse group. csc_matrix: `m` holds the transpose (rows = the columns of the
/// matrix the group encodes), and the shape attribute is that of the encoded matrix.
void write_csr(hid_t file, const std::string& name, const CsrMatrix& m, const std::string& where, bool csc = false) {
  Handle group = checked(H5Gcreate2(file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                         where + ": cannot create group " + name);
  write_string_attr(group.get(), "encoding-type", csc ? "csc_matrix" : "csr_matrix", where);
  write_string_attr(group.get(), "encoding-version", "0.1.0", where);
  {
    std::int64_t shape[2] = {csc ? m.cols : m.rows, csc ? m.rows : m.cols};
    hsize_t dims[1] = {2};
    Handle space = checked(H5Screate_simple(1, dims, nullptr), H5Sclose, where + ": cannot create dataspace");
    Handle attr = checked(H5Acreate2(group.get(), "shape", H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                          H5Aclose, where + ": cannot create attribute shape");
    check(H5Awrite(attr.get(), H5T_NATIVE_INT64, shape), where + ": cannot write shape");
  }
  write_array(group.get(), "indptr", H5T_NATIVE_INT64, H5T_STD_I64LE, m.indptr.data(), m.indptr.size(),
              where + ": " + name);
  write_array(group.get(), "indices", H5T_NATIVE_INT32, H5T_STD_I32LE, m.indices.data(), m.indices.size(),
              where + ": " + name);
  write_array(group.get(), "data", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, m.data.data(), m.data.size(), where + ": " + name);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void write_split_file(const std::string& path, const SplitData& data) {
  silence_hdf5();
  const CsrMatrix* mats[] = {&data.train, &data.validation_fold_in, &data.validation_holdout, &data.test_fold_in,
                             &data.test_holdout};
  for (int i = 0; i < 5; ++i) mats[i]->validate(path + ": " + kAllSplits[i]);
  for (int i = 1; i < 5; ++i)
    if (mats[i]->cols != data.train.cols)
      throw InputError(path + ": " + kAllSplits[i] + " has " + std::to_string(mats[i]->cols) + " items but train has " +
                       std::to_string(data.train.cols));
  if (data.validation_fold_in.rows != data.validation_holdout.rows)
    throw InputError(path + ": validation fold_in and holdout row counts differ");
  if (data.test_fold_in.rows != data.test_holdout.rows)
    throw InputError(path + ": test fold_in and holdout row counts differ");
  if (!data.item_ids.empty() && static_cast<std::int64_t>(data.item_ids.size()) != data.train.cols)
    throw InputError(path + ": item_ids has " + std::to_string(data.item_ids.size()) + " entries for " +
                     std::to_string(data.train.cols) + " items");
  auto check_ids = [&](const std::vector<std::string>& ids, std::int64_t rows, const char* what) {
    if (!ids.empty() && static_cast<std::int64_t>(ids.size()) != rows)
      throw InputError(path + ": " + what + " user ids: " + std::to_string(ids.size()) + " entries for " +
                       std::to_string(rows) + " rows");
  };
  check_ids(data.train_user_ids, data.train.rows, "train");
  check_ids(data.validation_user_ids, data.validation_fold_in.rows, "validation");
  check_ids(data.test_user_ids, data.test_fold_in.rows, "test");

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::remove(tmp.c_str());
  try {
    {
      Handle file = checked(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                            path + ": cannot create " + tmp + " (missing directory or no permission?)");
      const hid_t f = file.get();
      const std::string& w = path;
      const ProtocolInfo& p = data.protocol;
      write_scalar_attr<int>(f, "format_version", H5T_NATIVE_INT, H5T_STD_I32LE, kFormatVersion, w);
      write_string_attr(f, "source_format", p.source_format, w);
      write_scalar_attr<int>(f, "has_threshold", H5T_NATIVE_INT, H5T_STD_I32LE, p.has_threshold ? 1 : 0, w);
      write_scalar_attr<double>(f, "threshold", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE,
                                p.has_threshold ? p.threshold : std::numeric_limits<double>::quiet_NaN(), w);
      write_scalar_attr<std::int64_t>(f, "min_items_per_user", H5T_NATIVE_INT64, H5T_STD_I64LE, p.min_items_per_user,
                                      w);
      write_scalar_attr<std::int64_t>(f, "min_users_per_item", H5T_NATIVE_INT64, H5T_STD_I64LE, p.min_users_per_item,
                                      w);
      write_scalar_attr<std::int64_t>(f, "heldout_users", H5T_NATIVE_INT64, H5T_STD_I64LE, p.heldout_users, w);
      write_scalar_attr<double>(f, "holdout_fraction", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, p.holdout_fraction, w);
      write_scalar_attr<std::uint64_t>(f, "seed", H5T_NATIVE_UINT64, H5T_STD_U64LE, p.seed, w);

      for (const char* g : {"validation", "test", "user_ids"}) {
        Handle grp = checked(H5Gcreate2(f, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                             w + ": cannot create group " + g);
      }
      for (int i = 0; i < 5; ++i) write_csr(f, kAllSplits[i], *mats[i], w);
      write_csr(f, split::kTrainItemMajor, data.train.transposed(), w, /*csc=*/true);
      write_strings(f, "item_ids", data.item_ids, w);
      write_strings(f, "user_ids/train", data.train_user_ids, w);
      write_strings(f, "user_ids/validation", data.validation_user_ids, w);
      write_strings(f, "user_ids/test", data.test_user_ids, w);
      check(H5Fflush(f, H5F_SCOPE_GLOBAL), w + ": cannot flush " + tmp);
    }  // file closed here
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw InputError(path + ": cannot rename " + tmp + " to the output name");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void add_item_major_copy(const std::string& path) {
  CsrMatrix csc;
  {
    SplitFile file(path);
    if (file.has_item_major()) throw InputError(path + ": already has an item-major copy of train (train_csc)");
    csc = file.read_rows(split::kTrain, 0, file.num_rows(split::kTrain)).transposed();
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    std::filesystem::copy_file(path, tmp, std::filesystem::copy_options::overwrite_existing);
    {
      Handle file = checked(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path + ": cannot open " + tmp);
      write_csr(file.get(), split::kTrainItemMajor, csc, path, /*csc=*/true);
      check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), path + ": cannot flush " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InputError(path + ": cannot rename " + tmp + " to the file");
  } catch (const std::filesystem::filesystem_error& e) {
    std::remove(tmp.c_str());
    throw InputError(path + ": cannot copy to " + tmp + ": " + e.what());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

// ---------------------------------------------------------------------------------------------

SplitFile::SplitFile(const std::string& path) : path_(path) {
  silence_hdf5();
  if (!file_exists(path)) throw InputError(path + ": no such file");
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw InputError(path + ": cannot open: not an HDF5 file or truncated");
  file_id_ = f;
  try {
    if (!has_attr(f, "format_version"))
      throw InputError(path + ": missing attribute format_version (not a recvae split file?)");
    const int version = read_scalar_attr<int>(f, "format_version", H5T_NATIVE_INT, path);
    if (version != kFormatVersion)
      throw InputError(path + ": format_version " + std::to_string(version) + ", this build reads " +
                       std::to_string(kFormatVersion));
    std::int64_t cols = -1;
    std::string cols_from;
    for (const char* s : kAllSplits) {
      const std::string where = path + ": " + s;
      if (!has_link(f, s)) throw InputError(where + ": missing group");
      Handle g = checked(H5Gopen2(f, s, H5P_DEFAULT), H5Gclose, where + ": cannot open group");
      for (const char* ds : {"indptr", "indices", "data"})
        if (!has_link(g.get(), ds)) throw InputError(where + ": missing dataset " + ds);
      Handle attr = checked(H5Aopen(g.get(), "shape", H5P_DEFAULT), H5Aclose, where + ": missing attribute shape");
      Handle space = checked(H5Aget_space(attr.get()), H5Sclose, where + ": bad attribute shape");
      if (H5Sget_simple_extent_npoints(space.get()) != 2)
        throw InputError(where + ": attribute shape must have 2 entries");
      std::int64_t shape[2] = {0, 0};
      check(H5Aread(attr.get(), H5T_NATIVE_INT64, shape), where + ": cannot read attribute shape");
      if (shape[0] < 0 || shape[1] < 0) throw InputError(where + ": negative shape");
      if (has_attr(g.get(), "encoding-type")) {
        std::string enc = read_string_attr(g.get(), "encoding-type", where);
        if (enc != "csr_matrix") throw InputError(where + ": encoding-type '" + enc + "', expected csr_matrix");
      }
      Handle indptr = checked(H5Dopen2(g.get(), "indptr", H5P_DEFAULT), H5Dclose, where + ": cannot open indptr");
      Handle indices = checked(H5Dopen2(g.get(), "indices", H5P_DEFAULT), H5Dclose, where + ": cannot open indices");
      Handle data = checked(H5Dopen2(g.get(), "data", H5P_DEFAULT), H5Dclose, where + ": cannot open data");
      const std::int64_t np = dataset_length(indptr.get(), where + ": indptr");
      const std::int64_t ni = dataset_length(indices.get(), where + ": indices");
      const std::int64_t nd = dataset_length(data.get(), where + ": data");
      if (np - 1 != shape[0])  // not shape[0] + 1: a corrupt shape of INT64_MAX must not overflow
        throw InputError(where + ": indptr has " + std::to_string(np) + " entries for " + std::to_string(shape[0]) +
                         " rows");
      if (ni != nd)
        throw InputError(where + ": indices (" + std::to_string(ni) + ") and data (" + std::to_string(nd) +
                         ") lengths differ");
      std::int64_t ends[2] = {0, 0};
      read_range(indptr.get(), H5T_NATIVE_INT64, 0, 1, &ends[0], where + ": indptr");
      read_range(indptr.get(), H5T_NATIVE_INT64, shape[0], 1, &ends[1], where + ": indptr");
      if (ends[0] != 0) throw InputError(where + ": indptr[0] = " + std::to_string(ends[0]) + ", expected 0");
      if (ends[1] != ni)
        throw InputError(where + ": indptr ends at " + std::to_string(ends[1]) + " but there are " +
                         std::to_string(ni) + " non-zeros");
      if (cols < 0) {
        cols = shape[1];
        cols_from = s;
      } else if (shape[1] != cols) {
        throw InputError(where + ": " + std::to_string(shape[1]) + " items, but " + cols_from + " has " +
                         std::to_string(cols));
      }
      rows_[s] = shape[0];
    }
    num_items_ = cols;
    if (has_link(f, split::kTrainItemMajor)) {
      const std::string where = path + ": " + split::kTrainItemMajor;
      Handle g = checked(H5Gopen2(f, split::kTrainItemMajor, H5P_DEFAULT), H5Gclose, where + ": cannot open group");
      if (!has_attr(g.get(), "encoding-type") || read_string_attr(g.get(), "encoding-type", where) != "csc_matrix")
        throw InputError(where + ": expected encoding-type csc_matrix");
      Handle attr = checked(H5Aopen(g.get(), "shape", H5P_DEFAULT), H5Aclose, where + ": missing attribute shape");
      std::int64_t shape[2] = {0, 0};
      check(H5Aread(attr.get(), H5T_NATIVE_INT64, shape), where + ": cannot read attribute shape");
      if (shape[0] != rows_[split::kTrain] || shape[1] != cols)
        throw InputError(where + ": shape " + std::to_string(shape[0]) + " x " + std::to_string(shape[1]) +
                         " differs from train's " + std::to_string(rows_[split::kTrain]) + " x " +
                         std::to_string(cols));
      for (const char* ds : {"indptr", "indices", "data"})
        if (!has_link(g.get(), ds)) throw InputError(where + ": missing dataset " + ds);
      Handle indptr = checked(H5Dopen2(g.get(), "indptr", H5P_DEFAULT), H5Dclose, where + ": cannot open indptr");
      Handle indices = checked(H5Dopen2(g.get(), "indices", H5P_DEFAULT), H5Dclose, where + ": cannot open indices");
      Handle train_indices = checked(H5Dopen2(f, "train/indices", H5P_DEFAULT), H5Dclose, path + ": train: indices");
      if (dataset_length(indptr.get(), where + ": indptr") != cols + 1)
        throw InputError(where + ": indptr must have items + 1 entries");
      if (dataset_length(indices.get(), where + ": indices") != dataset_length(train_indices.get(), path + ": train"))
        throw InputError(where +
                         ": non-zero count differs from train's (a stale copy? rebuild it with recvae_prep --add-csc)");
      has_item_major_ = true;
    }
    if (rows_[split::kValidationFoldIn] != rows_[split::kValidationHoldout])
      throw InputError(path + ": validation: fold_in has " + std::to_string(rows_[split::kValidationFoldIn]) +
                       " rows but holdout has " + std::to_string(rows_[split::kValidationHoldout]));
    if (rows_[split::kTestFoldIn] != rows_[split::kTestHoldout])
      throw InputError(path + ": test: fold_in has " + std::to_string(rows_[split::kTestFoldIn]) +
                       " rows but holdout has " + std::to_string(rows_[split::kTestHoldout]));
  } catch (...) {
    H5Fclose(f);
    file_id_ = -1;
    throw;
  }
}

SplitFile::~SplitFile() {
  if (file_id_ >= 0) H5Fclose(static_cast<hid_t>(file_id_));
}

std::int64_t SplitFile::num_rows(const std::string& split) const {
  auto it = rows_.find(split);
  if (it == rows_.end()) throw InputError(path_ + ": unknown split '" + split + "'");
  return it->second;
}

std::vector<std::int64_t> SplitFile::read_group_indptr(const std::string& group, std::int64_t majors, std::int64_t lo,
                                                       std::int64_t hi) const {
  silence_hdf5();
  const std::string where = path_ + ": " + group;
  if (lo < 0 || hi < lo || hi > majors)
    throw InputError(where + ": row range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     ") out of range (rows " + std::to_string(majors) + ")");
  Handle ds = checked(H5Dopen2(static_cast<hid_t>(file_id_), (group + "/indptr").c_str(), H5P_DEFAULT), H5Dclose,
                      where + ": cannot open indptr");
  std::vector<std::int64_t> out(static_cast<std::size_t>(hi - lo + 1));
  read_range(ds.get(), H5T_NATIVE_INT64, lo, hi - lo + 1, out.data(), where + ": indptr");
  for (std::size_t i = 1; i < out.size(); ++i)
    if (out[i] < out[i - 1])
      throw InputError(where + ": indptr not monotone at row " + std::to_string(lo + static_cast<std::int64_t>(i) - 1));
  return out;
}

std::vector<std::int64_t> SplitFile::read_indptr(const std::string& split, std::int64_t lo, std::int64_t hi) const {
  return read_group_indptr(split, num_rows(split), lo, hi);
}

CsrMatrix SplitFile::read_compressed(const std::string& group, std::int64_t lo, std::int64_t hi,
                                     std::int64_t minor) const {
  std::vector<std::int64_t> ptr =
      read_group_indptr(group, group == split::kTrainItemMajor ? num_items_ : num_rows(group), lo, hi);
  const std::string where = path_ + ": " + group;
  const hid_t f = static_cast<hid_t>(file_id_);
  Handle indices =
      checked(H5Dopen2(f, (group + "/indices").c_str(), H5P_DEFAULT), H5Dclose, where + ": cannot open indices");
  Handle data = checked(H5Dopen2(f, (group + "/data").c_str(), H5P_DEFAULT), H5Dclose, where + ": cannot open data");
  const std::int64_t total = dataset_length(indices.get(), where + ": indices");
  if (dataset_length(data.get(), where + ": data") != total)
    throw InputError(where + ": indices and data lengths differ");
  const std::int64_t b = ptr.front(), e = ptr.back();
  if (b < 0 || e > total)
    throw InputError(where + ": indptr points outside the " + std::to_string(total) + " non-zeros in rows [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + ")");
  CsrMatrix m;
  m.rows = hi - lo;
  m.cols = minor;
  m.indices.resize(static_cast<std::size_t>(e - b));
  m.data.resize(static_cast<std::size_t>(e - b));
  read_range(indices.get(), H5T_NATIVE_INT32, b, e - b, m.indices.data(), where + ": indices");
  read_range(data.get(), H5T_NATIVE_FLOAT, b, e - b, m.data.data(), where + ": data");
  for (auto& p : ptr) p -= b;
  m.indptr = std::move(ptr);
  try {
    m.validate(where);
  } catch (const InputError& err) {
    // Report rows in the file's numbering, not the slice's.
    std::string msg = err.what();
    if (lo != 0) msg += " (of the range starting at row " + std::to_string(lo) + ")";
    throw InputError(msg);
  }
  return m;
}

CsrMatrix SplitFile::read_rows(const std::string& split, std::int64_t lo, std::int64_t hi) const {
  return read_compressed(split, lo, hi, num_items_);
}

std::vector<std::int64_t> SplitFile::read_item_indptr(std::int64_t lo, std::int64_t hi) const {
  if (!has_item_major_) read_item_columns(0, 0);  // throws the explanation
  return read_group_indptr(split::kTrainItemMajor, num_items_, lo, hi);
}

CsrMatrix SplitFile::read_item_columns(std::int64_t lo, std::int64_t hi) const {
  if (!has_item_major_)
    throw InputError(path_ +
                     ": no item-major copy of train (group train_csc), which ALS models need for their item "
                     "steps; add it with: recvae_prep --add-csc " +
                     path_);
  return read_compressed(split::kTrainItemMajor, lo, hi, rows_.at(split::kTrain));
}

std::vector<std::string> SplitFile::read_item_ids() const {
  silence_hdf5();
  const hid_t f = static_cast<hid_t>(file_id_);
  if (!has_link(f, "item_ids")) return {};
  return read_strings(f, "item_ids", path_);
}

std::vector<std::string> SplitFile::read_user_ids(const std::string& which) const {
  silence_hdf5();
  const hid_t f = static_cast<hid_t>(file_id_);
  const std::string name = "user_ids/" + which;
  if (!has_link(f, name)) return {};
  return read_strings(f, name.c_str(), path_);
}

ProtocolInfo SplitFile::read_protocol() const {
  silence_hdf5();
  const hid_t f = static_cast<hid_t>(file_id_);
  ProtocolInfo p;
  if (has_attr(f, "source_format")) p.source_format = read_string_attr(f, "source_format", path_);
  if (has_attr(f, "has_threshold"))
    p.has_threshold = read_scalar_attr<int>(f, "has_threshold", H5T_NATIVE_INT, path_) != 0;
  if (has_attr(f, "threshold")) p.threshold = read_scalar_attr<double>(f, "threshold", H5T_NATIVE_DOUBLE, path_);
  if (has_attr(f, "min_items_per_user"))
    p.min_items_per_user = read_scalar_attr<std::int64_t>(f, "min_items_per_user", H5T_NATIVE_INT64, path_);
  if (has_attr(f, "min_users_per_item"))
    p.min_users_per_item = read_scalar_attr<std::int64_t>(f, "min_users_per_item", H5T_NATIVE_INT64, path_);
  if (has_attr(f, "heldout_users"))
    p.heldout_users = read_scalar_attr<std::int64_t>(f, "heldout_users", H5T_NATIVE_INT64, path_);
  if (has_attr(f, "holdout_fraction"))
    p.holdout_fraction = read_scalar_attr<double>(f, "holdout_fraction", H5T_NATIVE_DOUBLE, path_);
  if (has_attr(f, "seed")) p.seed = read_scalar_attr<std::uint64_t>(f, "seed", H5T_NATIVE_UINT64, path_);
  return p;
}

}  // namespace recvae
