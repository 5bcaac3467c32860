#pragma once
// A host CSR matrix (rows = users, columns = items), the in-memory form of every split.
#include <cstdint>
#include <string>
#include <vector>

namespace recvae {

/// Compressed sparse rows; indices are sorted and unique within a row.
struct CsrMatrix {
  std::int64_t rows = 0;              ///< number of rows (users)
  std::int64_t cols = 0;              ///< number of columns (items)
  std::vector<std::int64_t> indptr;   ///< rows + 1 offsets, indptr[0] == 0 for a standalone matrix
  std::vector<std::int32_t> indices;  ///< column of each non-zero
  std::vector<float> data;            ///< value of each non-zero

  /// Number of non-zeros.
  std::int64_t nnz() const { return static_cast<std::int64_t>(indices.size()); }
  /// Non-zeros of row r.
  std::int64_t row_nnz(std::int64_t r) const { return indptr[r + 1] - indptr[r]; }
  /// An empty matrix of the given shape.
  static CsrMatrix empty(std::int64_t rows, std::int64_t cols);
  /// Builds from (row, col, value) triplets; sorts, and sums duplicates. rows/cols give the shape.
  static CsrMatrix from_triplets(std::int64_t rows, std::int64_t cols, const std::vector<std::int64_t>& r,
                                 const std::vector<std::int32_t>& c, const std::vector<float>& v);
  /// The transpose (rows = this matrix's columns), indices sorted: the item-major (CSC) copy.
  CsrMatrix transposed() const;
  /// Copy of rows [lo, hi) as a standalone matrix.
  CsrMatrix slice_rows(std::int64_t lo, std::int64_t hi) const;
  /// Throws InputError("<what>: <problem>") unless indptr is monotone from 0 to nnz, indices are in
  /// [0, cols), sorted and unique per row, and sizes are consistent.
  void validate(const std::string& what) const;
};

}  // namespace recvae
