#include "recvae/data/csr.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "recvae/util/error.h"

namespace recvae {

CsrMatrix CsrMatrix::empty(std::int64_t rows, std::int64_t cols) {
  if (rows < 0 || cols < 0) throw InputError("CsrMatrix::empty: negative shape");
  CsrMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.indptr.assign(static_cast<std::size_t>(rows) + 1, 0);
  return m;
}

CsrMatrix CsrMatrix::from_triplets(std::int64_t rows, std::int64_t cols, const std::vector<std::int64_t>& r,
                                   const std::vector<std::int32_t>& c, const std::vector<float>& v) {
  if (r.size() != c.size() || r.size() != v.size())
    throw InputError("CsrMatrix::from_triplets: row, column and value arrays differ in length");
  CsrMatrix m = empty(rows, cols);
  const std::size_t n = r.size();
  for (std::size_t k = 0; k < n; ++k) {
    if (r[k] < 0 || r[k] >= rows)
      throw InputError("CsrMatrix::from_triplets: row " + std::to_string(r[k]) + " out of range [0, " +
                       std::to_string(rows) + ")");
    if (c[k] < 0 || c[k] >= cols)
      throw InputError("CsrMatrix::from_triplets: column " + std::to_string(c[k]) + " out of range [0, " +
                       std::to_string(cols) + ")");
    ++m.indptr[static_cast<std::size_t>(r[k]) + 1];
  }
  for (std::int64_t i = 0; i < rows; ++i) m.indptr[i + 1] += m.indptr[i];
  // Counting sort by row (stable), then sort each row by column and merge duplicates.
  std::vector<std::int64_t> next(m.indptr.begin(), m.indptr.end() - 1);
  std::vector<std::pair<std::int32_t, float>> entries(n);
  for (std::size_t k = 0; k < n; ++k) entries[static_cast<std::size_t>(next[r[k]]++)] = {c[k], v[k]};
  m.indices.reserve(n);
  m.data.reserve(n);
  std::vector<std::int64_t> out_ptr(static_cast<std::size_t>(rows) + 1, 0);
  for (std::int64_t i = 0; i < rows; ++i) {
    auto b = entries.begin() + m.indptr[i], e = entries.begin() + m.indptr[i + 1];
    std::stable_sort(b, e, [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto it = b; it != e; ++it) {
      if (!m.indices.empty() && static_cast<std::int64_t>(m.indices.size()) > out_ptr[i] &&
          m.indices.back() == it->first) {
        m.data.back() += it->second;
      } else {
        m.indices.push_back(it->first);
        m.data.push_back(it->second);
      }
    }
    out_ptr[i + 1] = static_cast<std::int64_t>(m.indices.size());
  }
  m.indptr = std::move(out_ptr);
  return m;
}

CsrMatrix CsrMatrix::transposed() const {
  // Counting sort by column: rows are visited in order, so each output row's indices come out sorted.
  CsrMatrix t;
  t.rows = cols;
  t.cols = rows;
  t.indptr.assign(static_cast<size_t>(cols + 1), 0);
  const std::int64_t base = indptr.empty() ? 0 : indptr[0];
  for (std::int64_t p = 0; p < nnz(); ++p) ++t.indptr[static_cast<size_t>(indices[p]) + 1];
  for (std::int64_t c = 0; c < cols; ++c) t.indptr[c + 1] += t.indptr[c];
  t.indices.resize(indices.size());
  t.data.resize(data.size());
  std::vector<std::int64_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t p = indptr[r] - base; p < indptr[r + 1] - base; ++p) {
      const std::int64_t at = next[static_cast<size_t>(indices[p])]++;
      t.indices[at] = static_cast<std::int32_t>(r);
      t.data[at] = data[p];
    }
  return t;
}

CsrMatrix CsrMatrix::slice_rows(std::int64_t lo, std::int64_t hi) const {
  if (lo < 0 || hi < lo || hi > rows)
    throw InputError("CsrMatrix::slice_rows: range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     ") out of range (rows " + std::to_string(rows) + ")");
  CsrMatrix m;
  m.rows = hi - lo;
  m.cols = cols;
  m.indptr.resize(static_cast<std::size_t>(m.rows) + 1);
  const std::int64_t base = indptr[lo];
  for (std::int64_t i = 0; i <= m.rows; ++i) m.indptr[i] = indptr[lo + i] - base;
  m.indices.assign(indices.begin() + base, indices.begin() + indptr[hi]);
  m.data.assign(data.begin() + base, data.begin() + indptr[hi]);
  return m;
}

void CsrMatrix::validate(const std::string& what) const {
  auto fail = [&](const std::string& problem) { throw InputError(what + ": " + problem); };
  if (rows < 0 || cols < 0) fail("negative shape");
  if (cols > static_cast<std::int64_t>(INT32_MAX) + 1) fail("more columns than int32 indices can address");
  if (static_cast<std::int64_t>(indptr.size()) != rows + 1)
    fail("indptr has " + std::to_string(indptr.size()) + " entries, expected rows + 1 = " + std::to_string(rows + 1));
  if (indices.size() != data.size())
    fail("indices (" + std::to_string(indices.size()) + ") and data (" + std::to_string(data.size()) +
         ") lengths differ");
  if (indptr[0] != 0) fail("indptr[0] = " + std::to_string(indptr[0]) + ", expected 0");
  if (indptr[rows] != nnz())
    fail("indptr[rows] = " + std::to_string(indptr[rows]) + " but there are " + std::to_string(nnz()) + " non-zeros");
  for (std::int64_t i = 0; i < rows; ++i) {
    if (indptr[i + 1] < indptr[i]) fail("indptr not monotone at row " + std::to_string(i));
    if (indptr[i + 1] > nnz()) fail("indptr exceeds the number of non-zeros at row " + std::to_string(i));
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t b = indptr[i], e = indptr[i + 1];
    for (std::int64_t k = b; k < e; ++k) {
      const std::int32_t c = indices[k];
      if (c < 0 || c >= cols)
        fail("column index " + std::to_string(c) + " out of range [0, " + std::to_string(cols) + ") in row " +
             std::to_string(i));
      if (k > b && c <= indices[k - 1])
        fail(std::string(c == indices[k - 1] ? "duplicate" : "unsorted") + " column indices in row " +
             std::to_string(i));
    }
  }
}

}  // namespace recvae
