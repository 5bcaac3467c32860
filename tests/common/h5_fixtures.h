#pragma once
// Helpers for the data tests: small split files and raw HDF5 edits that break them on purpose.
#include <hdf5.h>

#include <string>
#include <vector>

#include "recvae/data/csr.h"
#include "recvae/data/h5_dataset.h"

namespace recvae::testing {

/// A CSR matrix from dense rows of column lists (values 1).
inline CsrMatrix csr_rows(std::int64_t cols, const std::vector<std::vector<std::int32_t>>& rows) {
  CsrMatrix m = CsrMatrix::empty(0, cols);
  for (const auto& r : rows) {
    for (std::int32_t c : r) {
      m.indices.push_back(c);
      m.data.push_back(1.0f);
    }
    m.indptr.push_back(static_cast<std::int64_t>(m.indices.size()));
    ++m.rows;
  }
  return m;
}

/// A small valid split: 6 items; train 5 rows incl. empty ones; 2 validation and 3 test users.
inline SplitData small_split() {
  SplitData d;
  d.train = csr_rows(6, {{}, {0, 2, 5}, {}, {1}, {3, 4}});
  d.validation_fold_in = csr_rows(6, {{0, 1}, {}});
  d.validation_holdout = csr_rows(6, {{5}, {2}});
  d.test_fold_in = csr_rows(6, {{1, 2, 3}, {0}, {4}});
  d.test_holdout = csr_rows(6, {{}, {5}, {1}});
  d.item_ids = {"a", "b", "c", "d", "e", "f"};
  d.train_user_ids = {"u0", "u1", "u2", "u3", "u4"};
  d.validation_user_ids = {"v0", "v1"};
  d.test_user_ids = {"t0", "t1", "t2"};
  d.protocol.source_format = "test";
  d.protocol.has_threshold = true;
  d.protocol.threshold = 3.5;
  d.protocol.min_items_per_user = 5;
  d.protocol.heldout_users = 2;
  d.protocol.seed = 42;
  return d;
}

/// Raw (unchecked) replacement of a CSR group: lets tests write what write_split_file refuses.
inline void raw_replace_csr(const std::string& file, const std::string& group, std::int64_t rows, std::int64_t cols,
                            const std::vector<std::int64_t>& indptr, const std::vector<std::int32_t>& indices,
                            const std::vector<float>& data) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot open " + file);
  if (H5Lexists(f, group.c_str(), H5P_DEFAULT) > 0) H5Ldelete(f, group.c_str(), H5P_DEFAULT);
  hid_t g = H5Gcreate2(f, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::int64_t shape[2] = {rows, cols};
  hsize_t two[1] = {2};
  hid_t s = H5Screate_simple(1, two, nullptr);
  hid_t a = H5Acreate2(g, "shape", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, shape);
  H5Aclose(a);
  H5Sclose(s);
  auto put = [&](const char* name, hid_t type, const void* p, std::size_t n) {
    hsize_t dims[1] = {n};
    hid_t sp = H5Screate_simple(1, dims, nullptr);
    hid_t ds = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (n > 0) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p);
    H5Dclose(ds);
    H5Sclose(sp);
  };
  put("indptr", H5T_NATIVE_INT64, indptr.data(), indptr.size());
  put("indices", H5T_NATIVE_INT32, indices.data(), indices.size());
  put("data", H5T_NATIVE_FLOAT, data.data(), data.size());
  H5Gclose(g);
  H5Fclose(f);
}

/// Overwrites the root attribute format_version.
inline void raw_set_version(const std::string& file, int version) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT, &version);
  H5Aclose(a);
  H5Fclose(f);
}

/// Deletes a link (group or dataset).
inline void raw_delete(const std::string& file, const std::string& path) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(f, path.c_str(), H5P_DEFAULT);
  H5Fclose(f);
}

}  // namespace recvae::testing
