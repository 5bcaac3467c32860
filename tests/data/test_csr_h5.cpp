// CSR matrix and HDF5 split file: round trips, row ranges, validation of broken files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/h5_fixtures.h"
#include "recvae/util/error.h"
#include "../common/test_util.h"

namespace fs = std::filesystem;
using namespace recvae;
using namespace recvae::testing;

namespace {

void expect_same(const CsrMatrix& a, const CsrMatrix& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.indptr, b.indptr);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.data, b.data);
}

/// Expects `f` to throw InputError whose message contains every piece.
template <typename F>
void expect_input_error(F&& f, const std::vector<std::string>& pieces) {
  try {
    f();
    ADD_FAILURE() << "no InputError thrown";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const auto& p : pieces)
      EXPECT_NE(msg.find(p), std::string::npos) << "message '" << msg << "' lacks '" << p << "'";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
  }
}

std::string write_small(const std::string& name) {
  const std::string file = scratch_dir(name) + "/split.h5";
  write_split_file(file, small_split());
  return file;
}

}  // namespace

TEST(Csr, FromTripletsSortsAndSumsDuplicates) {
  CsrMatrix m = CsrMatrix::from_triplets(3, 4, {2, 0, 2, 0, 2}, {3, 1, 0, 1, 3}, {1, 2, 3, 4, 5});
  EXPECT_EQ(m.indptr, (std::vector<std::int64_t>{0, 1, 1, 3}));
  EXPECT_EQ(m.indices, (std::vector<std::int32_t>{1, 0, 3}));
  EXPECT_EQ(m.data, (std::vector<float>{6, 3, 6}));
  EXPECT_NO_THROW(m.validate("m"));
  EXPECT_THROW(CsrMatrix::from_triplets(3, 4, {3}, {0}, {1}), InputError);
  EXPECT_THROW(CsrMatrix::from_triplets(3, 4, {0}, {4}, {1}), InputError);
}

TEST(Csr, SliceRows) {
  CsrMatrix m = small_split().train;
  CsrMatrix s = m.slice_rows(1, 4);
  EXPECT_EQ(s.rows, 3);
  EXPECT_EQ(s.indptr, (std::vector<std::int64_t>{0, 3, 3, 4}));
  EXPECT_EQ(s.indices, (std::vector<std::int32_t>{0, 2, 5, 1}));
  EXPECT_EQ(m.slice_rows(2, 2).nnz(), 0);
  EXPECT_THROW(m.slice_rows(3, 6), InputError);
}

TEST(Csr, ValidateFindsEachProblem) {
  CsrMatrix good = small_split().train;
  EXPECT_NO_THROW(good.validate("m"));
  auto broken = [&](auto edit, const std::string& piece) {
    CsrMatrix m = good;
    edit(m);
    expect_input_error([&] { m.validate("what"); }, {"what", piece});
  };
  broken(
      [](CsrMatrix& m) {
        m.indptr[2] = 4;
        m.indptr[3] = 3;
      },
      "monotone");
  broken([](CsrMatrix& m) { m.indices[0] = 6; }, "out of range");
  broken([](CsrMatrix& m) { m.indices[0] = -1; }, "out of range");
  broken([](CsrMatrix& m) { std::swap(m.indices[0], m.indices[1]); }, "unsorted");
  broken([](CsrMatrix& m) { m.indices[1] = 0; }, "duplicate");
  broken([](CsrMatrix& m) { m.data.pop_back(); }, "lengths differ");
  broken([](CsrMatrix& m) { m.indptr.pop_back(); }, "indptr has");
  broken([](CsrMatrix& m) { m.indptr[0] = 1; }, "indptr[0]");
}

TEST(SplitFile, RoundTrip) {
  const std::string file = write_small("roundtrip");
  SplitData d = small_split();
  SplitFile f(file);
  EXPECT_EQ(f.num_items(), 6);
  EXPECT_EQ(f.num_rows(split::kTrain), 5);
  EXPECT_EQ(f.num_rows(split::kValidationFoldIn), 2);
  EXPECT_EQ(f.num_rows(split::kTestHoldout), 3);
  expect_same(f.read_rows(split::kTrain, 0, 5), d.train);
  expect_same(f.read_rows(split::kValidationFoldIn, 0, 2), d.validation_fold_in);
  expect_same(f.read_rows(split::kValidationHoldout, 0, 2), d.validation_holdout);
  expect_same(f.read_rows(split::kTestFoldIn, 0, 3), d.test_fold_in);
  expect_same(f.read_rows(split::kTestHoldout, 0, 3), d.test_holdout);
  EXPECT_EQ(f.read_item_ids(), d.item_ids);
  EXPECT_EQ(f.read_user_ids("train"), d.train_user_ids);
  EXPECT_EQ(f.read_user_ids("validation"), d.validation_user_ids);
  EXPECT_EQ(f.read_user_ids("test"), d.test_user_ids);
  ProtocolInfo p = f.read_protocol();
  EXPECT_EQ(p.source_format, "test");
  EXPECT_TRUE(p.has_threshold);
  EXPECT_DOUBLE_EQ(p.threshold, 3.5);
  EXPECT_EQ(p.min_items_per_user, 5);
  EXPECT_EQ(p.heldout_users, 2);
  EXPECT_DOUBLE_EQ(p.holdout_fraction, 0.2);
  EXPECT_EQ(p.seed, 42u);
  EXPECT_THROW(f.num_rows("nope"), InputError);
  // No temporary file is left next to the output.
  int entries = 0;
  for (auto& e : fs::directory_iterator(fs::path(file).parent_path())) (void)e, ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(SplitFile, EveryRowRangeMatchesSlice) {
  const std::string file = write_small("ranges");
  SplitData d = small_split();
  SplitFile f(file);
  const std::pair<const char*, const CsrMatrix*> splits[] = {
      {split::kTrain, &d.train}, {split::kTestFoldIn, &d.test_fold_in}, {split::kTestHoldout, &d.test_holdout}};
  for (auto [name, m] : splits) {
    for (std::int64_t lo = 0; lo <= m->rows; ++lo) {
      for (std::int64_t hi = lo; hi <= m->rows; ++hi) {
        SCOPED_TRACE(std::string(name) + " [" + std::to_string(lo) + "," + std::to_string(hi) + ")");
        CsrMatrix got = f.read_rows(name, lo, hi);
        expect_same(got, m->slice_rows(lo, hi));
        std::vector<std::int64_t> ptr = f.read_indptr(name, lo, hi);
        ASSERT_EQ(ptr.size(), static_cast<std::size_t>(hi - lo + 1));
        EXPECT_EQ(ptr.front(), m->indptr[lo]);
        EXPECT_EQ(ptr.back(), m->indptr[hi]);
      }
    }
  }
  // Specific boundaries: first row, last row, an empty row, an empty range.
  EXPECT_EQ(f.read_rows(split::kTrain, 0, 1).nnz(), 0);
  EXPECT_EQ(f.read_rows(split::kTrain, 4, 5).indices, (std::vector<std::int32_t>{3, 4}));
  EXPECT_EQ(f.read_rows(split::kTrain, 2, 3).nnz(), 0);
  CsrMatrix none = f.read_rows(split::kTrain, 3, 3);
  EXPECT_EQ(none.rows, 0);
  EXPECT_EQ(none.cols, 6);
  EXPECT_EQ(none.indptr, (std::vector<std::int64_t>{0}));
}

TEST(SplitFile, OutOfRangeRowsAreErrors) {
  const std::string file = write_small("oor");
  SplitFile f(file);
  expect_input_error([&] { f.read_rows(split::kTrain, 0, 6); }, {file, "train", "out of range"});
  expect_input_error([&] { f.read_rows(split::kTrain, -1, 2); }, {file, "train", "out of range"});
  expect_input_error([&] { f.read_rows(split::kTrain, 3, 2); }, {file, "train", "out of range"});
  expect_input_error([&] { f.read_rows(split::kTestFoldIn, 4, 4); }, {file, "test/fold_in", "out of range"});
  expect_input_error([&] { f.read_indptr(split::kTrain, 0, 6); }, {file, "out of range"});
  expect_input_error([&] { f.read_rows("validation", 0, 1); }, {file, "unknown split"});
}

TEST(SplitFile, EmptySplitsAndLargeMatrix) {
  // Zero held-out users, and a matrix larger than one chunk.
  SplitData d;
  const std::int64_t rows = 3000, cols = 5000;
  std::vector<std::vector<std::int32_t>> r(rows);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int32_t c = static_cast<std::int32_t>(i % 7); c < cols; c += 7 + static_cast<std::int32_t>(i % 11))
      r[i].push_back(c);
  d.train = csr_rows(cols, r);
  d.validation_fold_in = d.validation_holdout = d.test_fold_in = d.test_holdout = CsrMatrix::empty(0, cols);
  ASSERT_GT(d.train.nnz(), 1 << 20);
  const std::string file = scratch_dir("large") + "/x.h5";
  write_split_file(file, d);
  SplitFile f(file);
  EXPECT_EQ(f.num_rows(split::kValidationHoldout), 0);
  expect_same(f.read_rows(split::kTrain, 0, rows), d.train);
  expect_same(f.read_rows(split::kTrain, 1234, 2345), d.train.slice_rows(1234, 2345));
  EXPECT_EQ(f.read_rows(split::kTestFoldIn, 0, 0).rows, 0);
  EXPECT_TRUE(f.read_item_ids().empty());
}

TEST(SplitFile, WriterRejectsInconsistentData) {
  const std::string dir = scratch_dir("writer_rejects");
  SplitData d = small_split();
  d.test_holdout = csr_rows(6, {{}, {5}});
  expect_input_error([&] { write_split_file(dir + "/a.h5", d); }, {"a.h5", "test"});
  d = small_split();
  d.validation_holdout.cols = 7;
  expect_input_error([&] { write_split_file(dir + "/b.h5", d); }, {"b.h5", "items"});
  d = small_split();
  d.train.indices[1] = 9;
  expect_input_error([&] { write_split_file(dir + "/c.h5", d); }, {"c.h5", "train", "out of range"});
  d = small_split();
  d.item_ids.pop_back();
  EXPECT_THROW(write_split_file(dir + "/d.h5", d), InputError);
  EXPECT_TRUE(fs::is_empty(dir)) << "a failed write left files behind";
  // Missing directory: an InputError, and nothing written.
  EXPECT_THROW(write_split_file(dir + "/no/such/dir/x.h5", small_split()), InputError);
}

TEST(SplitFile, FailedWriteKeepsExistingOutput) {
  const std::string file = write_small("keep");
  const auto size_before = fs::file_size(file);
  SplitData d = small_split();
  d.train.indices[0] = 99;
  EXPECT_THROW(write_split_file(file, d), InputError);
  EXPECT_EQ(fs::file_size(file), size_before);
  SplitFile f(file);  // still the valid old file
  EXPECT_EQ(f.read_rows(split::kTrain, 0, 5).nnz(), 6);
}

// ---- broken files ---------------------------------------------------------------------------

TEST(SplitFileBroken, MissingFile) {
  const std::string file = scratch_dir("missing") + "/none.h5";
  expect_input_error([&] { SplitFile f(file); }, {file, "no such file"});
}

TEST(SplitFileBroken, NotHdf5) {
  const std::string file = scratch_dir("nothdf5") + "/x.h5";
  write_text(file, "userId,movieId\n1,2\n");
  expect_input_error([&] { SplitFile f(file); }, {file, "cannot open", "not an HDF5 file"});
}

TEST(SplitFileBroken, Truncated) {
  const std::string file = write_small("truncated");
  const auto size = fs::file_size(file);
  for (auto keep : {size / 2, size - 100, std::uintmax_t(600)}) {
    const std::string copy = file + "." + std::to_string(keep);
    fs::copy_file(file, copy);
    fs::resize_file(copy, keep);
    expect_input_error(
        [&] {
          SplitFile f(copy);
          f.read_rows(split::kTrain, 0, 5);
          f.read_rows(split::kTestHoldout, 0, 3);
          f.read_item_ids();
        },
        {copy});
  }
}

TEST(SplitFileBroken, NonMonotoneIndptr) {
  const std::string file = write_small("nonmono");
  raw_replace_csr(file, "train", 5, 6, {0, 2, 1, 3, 4, 6}, {0, 2, 5, 1, 3, 4}, {1, 1, 1, 1, 1, 1});
  SplitFile f(file);  // the cheap open-time checks pass; the row read finds it
  expect_input_error([&] { f.read_rows(split::kTrain, 0, 5); }, {file, "train", "not monotone"});
  expect_input_error([&] { f.read_rows(split::kTrain, 1, 3); }, {file, "train", "not monotone"});
  EXPECT_NO_THROW(f.read_rows(split::kTrain, 3, 5));
}

TEST(SplitFileBroken, IndexOutOfRange) {
  const std::string file = write_small("index_oor");
  raw_replace_csr(file, "test/fold_in", 3, 6, {0, 3, 4, 5}, {1, 2, 6, 0, 4}, {1, 1, 1, 1, 1});
  SplitFile f(file);
  expect_input_error([&] { f.read_rows(split::kTestFoldIn, 0, 1); }, {file, "test/fold_in", "out of range"});
  EXPECT_NO_THROW(f.read_rows(split::kTestFoldIn, 1, 3));
}

TEST(SplitFileBroken, UnsortedAndDuplicateIndices) {
  const std::string file = write_small("unsorted");
  raw_replace_csr(file, "train", 5, 6, {0, 0, 3, 3, 4, 6}, {0, 5, 2, 1, 3, 3}, {1, 1, 1, 1, 1, 1});
  SplitFile f(file);
  expect_input_error([&] { f.read_rows(split::kTrain, 1, 2); }, {file, "train", "unsorted"});
  expect_input_error([&] { f.read_rows(split::kTrain, 4, 5); }, {file, "train", "duplicate"});
  EXPECT_NO_THROW(f.read_rows(split::kTrain, 2, 4));
}

TEST(SplitFileBroken, IndicesDataLengthMismatch) {
  const std::string file = write_small("lenmismatch");
  raw_replace_csr(file, "validation/holdout", 2, 6, {0, 1, 2}, {5, 2}, {1});
  expect_input_error([&] { SplitFile f(file); }, {file, "validation/holdout", "lengths differ"});
}

TEST(SplitFileBroken, IndptrDoesNotMatchNnz) {
  const std::string file = write_small("indptr_end");
  raw_replace_csr(file, "validation/holdout", 2, 6, {0, 1, 3}, {5, 2}, {1, 1});
  expect_input_error([&] { SplitFile f(file); }, {file, "validation/holdout", "indptr"});
  raw_replace_csr(file, "validation/holdout", 2, 6, {0, 1, 2, 2}, {5, 2}, {1, 1});
  expect_input_error([&] { SplitFile f(file); }, {file, "validation/holdout", "indptr has 4 entries"});
}

TEST(SplitFileBroken, FoldInHoldoutRowMismatch) {
  const std::string file = write_small("rowmismatch");
  raw_replace_csr(file, "test/holdout", 2, 6, {0, 1, 2}, {5, 1}, {1, 1});
  expect_input_error([&] { SplitFile f(file); }, {file, "test", "fold_in has 3 rows", "holdout has 2"});
}

TEST(SplitFileBroken, DifferentItemCounts) {
  const std::string file = write_small("itemcounts");
  raw_replace_csr(file, "validation/fold_in", 2, 7, {0, 2, 2}, {0, 1}, {1, 1});
  expect_input_error([&] { SplitFile f(file); }, {file, "validation/fold_in", "7 items"});
}

TEST(SplitFileBroken, MissingGroupOrDataset) {
  std::string file = write_small("missinggroup");
  raw_delete(file, "test");
  expect_input_error([&] { SplitFile f(file); }, {file, "test/fold_in", "missing group"});
  file = write_small("missingds");
  raw_delete(file, "validation/holdout/indices");
  expect_input_error([&] { SplitFile f(file); }, {file, "validation/holdout", "missing dataset indices"});
}

TEST(SplitFileBroken, WrongFormatVersion) {
  std::string file = write_small("version");
  raw_set_version(file, kFormatVersion + 1);
  expect_input_error([&] { SplitFile f(file); }, {file, "format_version " + std::to_string(kFormatVersion + 1)});
  file = write_small("noversion");
  {
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "format_version");
    H5Fclose(f);
  }
  expect_input_error([&] { SplitFile f(file); }, {file, "format_version"});
}
