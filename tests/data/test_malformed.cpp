// Table-driven malformed-input tests for every raw reader and the liang directory import: each row
// is a file content and either the number of interactions it must parse to, or a piece of the
// InputError message (which must also name the file).
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../common/h5_fixtures.h"
#include "recvae/util/error.h"
#include "recvae/data/raw_readers.h"
#include "../common/test_util.h"

namespace fs = std::filesystem;
using namespace recvae;
using namespace recvae::testing;

namespace {

/// One table row. `error` empty: the content must parse to `count` interactions.
struct Row {
  std::string name;
  std::optional<std::string> content;  ///< nullopt: the file is not created (missing file)
  std::string error;                   ///< expected piece of the InputError message
  std::int64_t count = 0;              ///< expected interactions when `error` is empty
};

Row ok(const std::string& name, const std::string& content, std::int64_t count) { return {name, content, "", count}; }
Row bad(const std::string& name, std::optional<std::string> content, const std::string& error) {
  return {name, std::move(content), error, 0};
}

/// Binary garbage: NULs, high bytes, control characters, a few newlines.
const std::string kGarbage = std::string("\x00\xff\xfe\x01\x7f\x80garbage\x00\n\x1b[0m\xc3\x28\n\x02\x03", 24);

/// Runs `read(path)` for each row; `file_name` is the name the content is written under.
void run_table(const std::string& tag, const std::string& file_name, const std::vector<Row>& rows,
               const std::function<std::int64_t(const std::string&)>& read) {
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const Row& row = rows[k];
    SCOPED_TRACE(tag + " row '" + row.name + "'");
    const std::string dir = scratch_dir(tag + "_" + std::to_string(k));
    const std::string path = dir + "/" + file_name;
    if (row.content) write_text(path, *row.content);
    if (row.error.empty()) {
      try {
        EXPECT_EQ(read(path), row.count);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected exception: " << e.what();
      }
      continue;
    }
    try {
      const std::int64_t n = read(path);
      ADD_FAILURE() << "no InputError (parsed " << n << " interactions), expected '" << row.error << "'";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
      EXPECT_NE(msg.find(row.error), std::string::npos) << "message '" << msg << "' lacks '" << row.error << "'";
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an InputError: " << e.what();
    }
  }
}

const std::string kMlHeader = "userId,movieId,rating,timestamp\n";

}  // namespace

TEST(Malformed, MovielensCsv) {
  const std::vector<Row> rows = {
      bad("empty file", "", "empty file"),
      bad("blank lines only", "\n\r\n\n", "empty file"),
      bad("header only", kMlHeader, "no ratings"),
      bad("header only, no newline", "userId,movieId,rating,timestamp", "no ratings"),
      bad("wrong header", "user,item,rating\n1,2,3\n", ":1: unexpected header"),
      bad("header with too few columns", "userId,movieId\n1,2\n", ":1: unexpected header"),
      bad("too few columns", kMlHeader + "1,2,3,4\n5,6\n", ":3: expected the columns"),
      bad("one column", kMlHeader + "1\n", ":2: expected the columns"),
      bad("non-numeric userId", kMlHeader + "u1,2,3,4\n", ":2: non-numeric userId 'u1'"),
      bad("fractional userId", kMlHeader + "1.5,2,3,4\n", ":2: non-numeric userId"),
      bad("userId beyond int64", kMlHeader + "99999999999999999999,2,3,4\n", ":2: non-numeric userId"),
      bad("empty userId", kMlHeader + ",2,3,4\n", ":2: non-numeric userId"),
      bad("non-numeric movieId", kMlHeader + "1,m2,3,4\n", ":2: non-numeric movieId 'm2'"),
      bad("non-numeric rating", kMlHeader + "1,2,x,4\n", ":2: non-numeric rating 'x'"),
      bad("rating with trailing text", kMlHeader + "1,2,3.5stars,4\n", ":2: non-numeric rating"),
      bad("empty rating", kMlHeader + "1,2,,4\n", ":2: non-numeric rating"),
      bad("error on a later line", kMlHeader + "1,2,3,4\n1,3,4,5\n\n1,4,oops,6\n", ":5: non-numeric rating"),
      // Values are only compared with the threshold later (NaN > t is false, so NaN ratings are
      // dropped there); the reader keeps them.
      ok("negative rating", kMlHeader + "1,2,-1,4\n", 1),
      ok("NaN rating", kMlHeader + "1,2,nan,4\n", 1),
      ok("explicit plus sign", kMlHeader + "1,2,+4.5,4\n", 1),
      ok("no timestamp column", kMlHeader + "1,2,3\n", 1),
      ok("extra columns", kMlHeader + "1,2,3,4,5,6\n", 1),
      ok("truncated last line", kMlHeader + "1,2,3,4\n1,3,4", 2),
      ok("CRLF line endings", "userId,movieId,rating,timestamp\r\n1,2,3,4\r\n1,3,4,5\r\n", 2),
      ok("extra whitespace", "userId, movieId ,rating\n 1 ,\t2, 3.5 ,4 \n\n1,3,4,5\n", 2),
      // Blank lines are skipped, a line of spaces is not (it is reported with its line number).
      bad("whitespace-only line", kMlHeader + "1,2,3,4\n   \n", ":3: expected the columns"),
      ok("leading blank lines", "\n\n" + kMlHeader + "1,2,3,4\n", 1),
      bad("binary garbage", kGarbage, ":1: unexpected header"),
      bad("missing file", std::nullopt, "no such file"),
  };
  run_table("mal_mlcsv", "ratings.csv", rows, [](const std::string& p) { return read_movielens(p, false).size(); });
}

TEST(Malformed, MovielensDat) {
  const std::vector<Row> rows = {
      ok("valid", "1::2::3::4\n1::3::4::5\n2::2::5::6\n", 3),
      bad("too few columns", "1::2::3::4\n5::6\n", ":2: expected the columns"),
      bad("separators only", "::\n", ":1: expected the columns"),
      bad("non-numeric userId", "1::2::3::4\nabc::2::3::4\n", ":2: non-numeric userId 'abc'"),
      bad("non-numeric movieId", "1::x::3::4\n", ":1: non-numeric movieId 'x'"),
      bad("non-numeric rating", "1::2::bad::4\n", ":1: non-numeric rating 'bad'"),
      // Single colons: no "::" in the first line, so it is taken for a ratings.csv without header.
      bad("single-colon separators", "1:2:3:4\n", ":1: unexpected header"),
      ok("negative rating", "1::2::-3::4\n", 1),
      ok("NaN rating", "1::2::NaN::4\n", 1),
      ok("truncated last line", "1::2::3::4\n1::3::4", 2),
      ok("CRLF line endings", "1::2::3::4\r\n1::3::4::5\r\n", 2),
      ok("blank line inside", "1::2::3::4\n\n1::3::4::5\n", 2),
      ok("extra whitespace", " 1 :: 2 ::\t3\t::4\n", 1),
      bad("empty file", "", "empty file"),
      bad("missing file", std::nullopt, "no such file"),
  };
  run_table("mal_mldat", "ratings.dat", rows, [](const std::string& p) { return read_movielens(p, false).size(); });
}

TEST(Malformed, Netflix) {
  const std::vector<Row> rows = {
      ok("valid", "1:\n10,3,2005-09-06\n11,5,2005-05-13\n2:\n10,4,2005-01-01\n", 3),
      bad("empty file", "", "no ratings"),
      bad("movie line only", "1:\n", "no ratings"),
      bad("rating before movie", "10,3,2005-09-06\n", ":1: rating line before the first 'MovieID:' line"),
      bad("one column", "1:\n10\n", ":2: expected CustomerID,Rating,Date"),
      bad("non-numeric MovieID", "m1:\n10,3,2005\n", ":1: non-numeric MovieID 'm1:'"),
      bad("non-numeric CustomerID", "1:\nc10,3,2005\n", ":2: non-numeric CustomerID 'c10'"),
      bad("non-numeric rating", "1:\n10,three,2005\n", ":2: non-numeric rating 'three'"),
      bad("empty rating", "1:\n10,,2005\n", ":2: non-numeric rating"),
      ok("negative rating", "1:\n10,-2,2005\n", 1),
      ok("NaN rating", "1:\n10,nan,2005\n", 1),
      ok("no date column", "1:\n10,3\n", 1),
      ok("truncated last line", "1:\n10,3,2005\n11,4", 2),
      ok("CRLF line endings", "1:\r\n10,3,2005\r\n11,4,2005\r\n", 2),
      ok("extra whitespace", "1:\n 10 , 3 ,2005\n\n\t11,\t4\t,2005\n", 2),
      bad("binary garbage", kGarbage, ":1: rating line before the first 'MovieID:' line"),
      bad("missing file", std::nullopt, "no such file"),
  };
  run_table("mal_netflix", "combined_data_1.txt", rows,
            [](const std::string& p) { return read_netflix({p}, false).size(); });
}

TEST(Malformed, Msd) {
  const std::vector<Row> rows = {
      ok("valid", "u1\ts1\t1\nu1\ts2\t12\nu2\ts1\t3\n", 3),
      bad("empty file", "", "no interactions"),
      bad("header line", "user\tsong\tcount\nu1\ts1\t1\n", ":1: non-numeric value 'count'"),
      bad("two columns", "u1\ts1\t1\nu2\ts2\n", ":2: expected 3 columns"),
      bad("spaces instead of tabs", "u1 s1 1\n", ":1: expected 3 columns"),
      bad("non-numeric count", "u1\ts1\tmany\n", ":1: non-numeric value 'many'"),
      bad("empty count", "u1\ts1\t\n", ":1: non-numeric value"),
      bad("empty user id", "\ts1\t1\n", ":1: empty user or item id"),
      bad("blank item id", "u1\t \t1\n", ":1: empty user or item id"),
      ok("negative count", "u1\ts1\t-1\n", 1),
      ok("NaN count", "u1\ts1\tnan\n", 1),
      ok("extra columns", "u1\ts1\t1\textra\n", 1),
      ok("truncated last line", "u1\ts1\t1\nu2\ts2\t2", 2),
      ok("CRLF line endings", "u1\ts1\t1\r\nu2\ts2\t2\r\n", 2),
      ok("extra whitespace", " u1 \t s1 \t 1 \n\nu2\ts2\t2\n", 2),
      bad("binary garbage", kGarbage, ":1: expected 3 columns"),
      bad("missing file", std::nullopt, "no such file"),
  };
  run_table("mal_msd", "train_triplets.txt", rows, [](const std::string& p) { return read_msd(p, false).size(); });
}

TEST(Malformed, Csv) {
  const std::vector<Row> rows = {
      ok("two columns", "user,item\na,x\nb,y\na,y\n", 3),
      ok("three columns", "user,item,value\na,x,0.5\nb,y,2\n", 2),
      bad("empty file", "", "empty file"),
      bad("blank lines only", "\n \n\t\n", "empty file"),
      bad("header only", "user,item\n", "no interactions"),
      bad("one-column header", "user\na\n", ":1: header 'user' has fewer than 2 columns"),
      bad("too few columns for the header", "user,item,value\na,x,1\nb,y\n", ":3: expected 3 columns"),
      bad("one column", "user,item\na\n", ":2: expected 2 columns"),
      bad("non-numeric value", "user,item,value\na,x,lots\n", ":2: non-numeric value 'lots'"),
      bad("empty value", "user,item,value\na,x,\n", ":2: non-numeric value"),
      bad("empty item id", "user,item\na,\n", ":2: empty user or item id"),
      bad("blank user id", "user,item\n  ,x\n", ":2: empty user or item id"),
      ok("negative value", "user,item,value\na,x,-1\n", 1),
      ok("NaN value", "user,item,value\na,x,nan\n", 1),
      ok("extra columns ignored", "user,item,value,time\na,x,1,99\nb,y,2,100,more\n", 2),
      ok("truncated last line", "user,item\na,x\nb,y", 2),
      ok("CRLF line endings", "user,item,value\r\na,x,1\r\nb,y,2\r\n", 2),
      ok("extra whitespace", "user , item\n a , x \n\n\tb\t,\ty\n", 2),
      bad("binary garbage", kGarbage, ":1: header"),
      bad("missing file", std::nullopt, "no such file"),
  };
  run_table("mal_csv", "data.csv", rows, [](const std::string& p) { return read_csv(p, false).size(); });
}

namespace {

/// A liang-directory row: files to override (nullopt: delete the file) on top of a valid base.
struct LiangRow {
  std::string name;
  std::map<std::string, std::optional<std::string>> files;
  std::string error;                  ///< expected piece of the message; empty: must import
  std::string error_file;             ///< the file the message must name
  std::int64_t nnz = 0;               ///< total non-zeros over the five matrices when importing
  std::int64_t validation_rows = -1;  ///< checked when >= 0
};

std::map<std::string, std::string> liang_base() {
  return {
      {"unique_sid.txt", "100\n200\n300\n400\n"},     {"unique_uid.txt", "u0\nu1\nu2\nu3\nu4\nu5\nu6\n"},
      {"train.csv", "uid,sid\n0,1\n0,3\n1,0\n2,2\n"}, {"validation_tr.csv", "uid,sid\n3,0\n4,1\n"},
      {"validation_te.csv", "uid,sid\n3,3\n4,2\n"},   {"test_tr.csv", "uid,sid\n5,0\n6,1\n"},
      {"test_te.csv", "uid,sid\n5,2\n6,3\n"},
  };
}

std::int64_t total_nnz(const SplitData& d) {
  return d.train.nnz() + d.validation_fold_in.nnz() + d.validation_holdout.nnz() + d.test_fold_in.nnz() +
         d.test_holdout.nnz();
}

}  // namespace

TEST(Malformed, LiangDirectory) {
  using F = std::map<std::string, std::optional<std::string>>;
  const std::vector<LiangRow> rows = {
      {"valid", {}, "", "", 12, 2},
      {"no unique_uid.txt", F{{"unique_uid.txt", std::nullopt}}, "", "", 12, 2},
      {"missing unique_sid.txt", F{{"unique_sid.txt", std::nullopt}}, "no such file", "unique_sid.txt"},
      {"empty unique_sid.txt", F{{"unique_sid.txt", "\n\n"}}, "no items", "unique_sid.txt"},
      {"missing train.csv", F{{"train.csv", std::nullopt}}, "no such file", "train.csv"},
      {"missing test_te.csv", F{{"test_te.csv", std::nullopt}}, "no such file", "test_te.csv"},
      {"empty train.csv", F{{"train.csv", ""}}, "empty file, expected a header uid,sid", "train.csv"},
      {"header-only train.csv", F{{"train.csv", "uid,sid\n"}}, "no interactions", "train.csv"},
      {"wrong header", F{{"validation_tr.csv", "user,item\n3,0\n"}}, ":1: unexpected header", "validation_tr.csv"},
      {"swapped header", F{{"train.csv", "sid,uid\n1,0\n3,0\n0,1\n2,2\n"}}, "", "", 12, 2},
      {"three columns", F{{"train.csv", "uid,sid\n0,1\n0,3,7\n"}}, ":3: expected 2 columns", "train.csv"},
      {"one column", F{{"test_tr.csv", "uid,sid\n5\n"}}, ":2: expected 2 columns", "test_tr.csv"},
      {"non-numeric uid", F{{"train.csv", "uid,sid\nu0,1\n"}}, ":2: bad uid 'u0'", "train.csv"},
      {"negative uid", F{{"validation_te.csv", "uid,sid\n-3,3\n"}}, ":2: bad uid '-3'", "validation_te.csv"},
      {"non-numeric sid", F{{"test_te.csv", "uid,sid\n5,x\n"}}, ":2: bad sid 'x'", "test_te.csv"},
      {"negative sid", F{{"train.csv", "uid,sid\n0,-1\n"}}, ":2: bad sid '-1'", "train.csv"},
      {"sid out of range", F{{"test_te.csv", "uid,sid\n5,2\n6,4\n"}}, ":3: sid 4 out of range", "test_te.csv"},
      {"sid out of range in train", F{{"train.csv", "uid,sid\n0,1\n1,400\n"}}, ":3: sid 400 out of range", "train.csv"},
      // tr and te cover different uid ranges: rows span both, users missing from one side get empty rows.
      {"tr/te uid ranges differ", F{{"validation_tr.csv", "uid,sid\n3,0\n"}, {"validation_te.csv", "uid,sid\n4,2\n"}},
       "", "", 10, 2},
      {"tr/te disjoint ranges",
       F{{"validation_tr.csv", "uid,sid\n3,0\n4,1\n"},
         {"validation_te.csv", "uid,sid\n5,2\n6,3\n"},
         {"test_tr.csv", "uid,sid\n"},
         {"test_te.csv", "uid,sid\n"}},
       "", "", 8, 4},
      // Gaps in the uids become empty rows (as in the reference code) ...
      {"non-consecutive train uids", F{{"train.csv", "uid,sid\n0,1\n2,3\n"}}, "", "", 10, 2},
      // ... but a span far beyond the input (no unique_uid.txt names those users) is rejected.
      {"huge train uid", F{{"unique_uid.txt", std::nullopt}, {"train.csv", "uid,sid\n0,1\n1000000000000,2\n"}},
       "uids must be consecutive", "train.csv"},
      {"int64-max train uid", F{{"train.csv", "uid,sid\n9223372036854775807,2\n"}}, "uids must be consecutive",
       "train.csv"},
      {"huge heldout uid", F{{"test_te.csv", "uid,sid\n5,2\n4000000000,3\n"}}, "uids must be consecutive",
       "test_te.csv"},
      {"uid beyond int64", F{{"train.csv", "uid,sid\n99999999999999999999,2\n"}}, ":2: bad uid", "train.csv"},
      {"empty heldout files", F{{"test_tr.csv", "uid,sid\n"}, {"test_te.csv", "uid,sid\n"}}, "", "", 8, 2},
      {"truncated last lines",
       F{{"train.csv", "uid,sid\n0,1\n0,3\n1,0\n2,2"}, {"unique_sid.txt", "100\n200\n300\n400"}}, "", "", 12, 2},
      {"CRLF line endings",
       F{{"train.csv", "uid,sid\r\n0,1\r\n0,3\r\n1,0\r\n2,2\r\n"}, {"unique_sid.txt", "100\r\n200\r\n300\r\n400\r\n"}},
       "", "", 12, 2},
      {"extra whitespace", F{{"train.csv", " uid , sid \n 0 ,1\n\n0, 3\n  \n1,0 \n2,\t2\n"}}, "", "", 12, 2},
      {"binary garbage", F{{"test_tr.csv", kGarbage}}, ":1: unexpected header", "test_tr.csv"},
  };
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const LiangRow& row = rows[k];
    SCOPED_TRACE("liang row '" + row.name + "'");
    const std::string dir = scratch_dir("mal_liang_" + std::to_string(k));
    std::map<std::string, std::optional<std::string>> files;
    for (const auto& [name, content] : liang_base()) files[name] = content;
    for (const auto& [name, content] : row.files) files[name] = content;
    for (const auto& [name, content] : files)
      if (content) write_text(dir + "/" + name, *content);
    if (row.error.empty()) {
      try {
        SplitData d = read_liang_dir(dir);
        EXPECT_EQ(total_nnz(d), row.nnz);
        EXPECT_EQ(d.train.cols, 4);
        if (row.validation_rows >= 0) {
          EXPECT_EQ(d.validation_fold_in.rows, row.validation_rows);
          EXPECT_EQ(d.validation_holdout.rows, row.validation_rows);
        }
        EXPECT_EQ(d.test_fold_in.rows, d.test_holdout.rows);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected exception: " << e.what();
      }
      continue;
    }
    try {
      read_liang_dir(dir);
      ADD_FAILURE() << "no InputError, expected '" << row.error << "'";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(dir + "/" + row.error_file), std::string::npos) << "message does not name the file: " << msg;
      EXPECT_NE(msg.find(row.error), std::string::npos) << "message '" << msg << "' lacks '" << row.error << "'";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an InputError: " << e.what();
    }
  }
  // The directory itself: missing, or a file instead of a directory.
  const std::string base = scratch_dir("mal_liang_dir");
  EXPECT_THROW(read_liang_dir(base + "/none"), InputError);
  write_text(base + "/file", "x\n");
  try {
    read_liang_dir(base + "/file");
    ADD_FAILURE() << "no InputError for a plain file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(base + "/file"), std::string::npos) << e.what();
  }
}

// ---- split files: corruptions not covered by test_csr_h5.cpp -----------------------------------

namespace {

/// Creates (or replaces) a root or group attribute holding a fixed-length string.
void raw_string_attr(const std::string& file, const std::string& object, const char* name, const std::string& value) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t o = H5Oopen(f, object.c_str(), H5P_DEFAULT);
  if (H5Aexists(o, name) > 0) H5Adelete(o, name);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, value.size() + 1);
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(o, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, value.c_str());
  H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  H5Oclose(o);
  H5Fclose(f);
}

/// Replaces a group's `shape` attribute by an int64 array of any length.
void raw_shape(const std::string& file, const std::string& group, const std::vector<std::int64_t>& shape) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t g = H5Gopen2(f, group.c_str(), H5P_DEFAULT);
  H5Adelete(g, "shape");
  hsize_t n[1] = {shape.size()};
  hid_t s = H5Screate_simple(1, n, nullptr);
  hid_t a = H5Acreate2(g, "shape", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, shape.data());
  H5Aclose(a);
  H5Sclose(s);
  H5Gclose(g);
  H5Fclose(f);
}

/// Replaces a dataset by a 2-D int32 one of the same element count (n x 1).
void raw_make_2d(const std::string& file, const std::string& dataset, std::size_t n) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(f, dataset.c_str(), H5P_DEFAULT);
  hsize_t dims[2] = {n, 1};
  hid_t s = H5Screate_simple(2, dims, nullptr);
  hid_t d = H5Dcreate2(f, dataset.c_str(), H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<std::int32_t> zeros(n, 0);
  if (n > 0) H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
  H5Dclose(d);
  H5Sclose(s);
  H5Fclose(f);
}

/// Replaces item_ids by a chunked, never written string dataset claiming `n` entries.
void raw_huge_item_ids(const std::string& file, hsize_t n) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(f, "item_ids", H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  hsize_t dims[1] = {n}, chunk[1] = {1024};
  hid_t s = H5Screate_simple(1, dims, nullptr);
  hid_t p = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(p, 1, chunk);
  hid_t d = H5Dcreate2(f, "item_ids", t, s, H5P_DEFAULT, p, H5P_DEFAULT);
  H5Dclose(d);
  H5Pclose(p);
  H5Sclose(s);
  H5Tclose(t);
  H5Fclose(f);
}

struct SplitRow {
  std::string name;
  std::function<void(const std::string&)> corrupt;  ///< edits the valid small split file
  std::function<void(const SplitFile&)> read;       ///< after a successful open (may be empty)
  std::vector<std::string> pieces;                  ///< expected in the message (plus the path)
};

}  // namespace

TEST(Malformed, SplitFile) {
  const std::vector<SplitRow> rows = {
      {"zero-byte file", [](const std::string& f) { fs::resize_file(f, 0); }, nullptr, {"cannot open"}},
      {"format_version is a string",
       [](const std::string& f) { raw_string_attr(f, "/", "format_version", "1"); },
       nullptr,
       {"format_version"}},
      {"indptr does not start at 0",
       [](const std::string& f) {
         raw_replace_csr(f, "validation/holdout", 2, 6, {1, 1, 2}, {5, 2}, {1, 1});
       },
       nullptr,
       {"validation/holdout", "indptr[0] = 1"}},
      {"negative shape",
       [](const std::string& f) { raw_replace_csr(f, "train", -1, 6, {}, {}, {}); },
       nullptr,
       {"train", "negative shape"}},
      // Found by fuzz_split_file: shape[0] + 1 overflowed (UBSan) before the indptr length check.
      {"row count INT64_MAX",
       [](const std::string& f) {
         raw_shape(f, "train", {INT64_MAX, 6});
       },
       nullptr,
       {"train", "indptr has 6 entries for 9223372036854775807 rows"}},
      {"shape with 3 entries",
       [](const std::string& f) {
         raw_shape(f, "test/fold_in", {3, 6, 1});
       },
       nullptr,
       {"test/fold_in", "shape must have 2 entries"}},
      {"wrong encoding-type",
       [](const std::string& f) { raw_string_attr(f, "validation/fold_in", "encoding-type", "coo_matrix"); },
       nullptr,
       {"validation/fold_in", "encoding-type 'coo_matrix'"}},
      {"2-D indices",
       [](const std::string& f) { raw_make_2d(f, "train/indices", 6); },
       nullptr,
       {"train", "indices", "not a 1-D dataset"}},
      {"indptr jumps beyond nnz in the middle",
       [](const std::string& f) {
         raw_replace_csr(f, "test/holdout", 3, 6, {0, 9, 2, 2}, {5, 1}, {1, 1});
       },
       [](const SplitFile& s) { s.read_rows(split::kTestHoldout, 0, 1); },
       {"test/holdout", "indptr points outside"}},
      // Found by fuzz_split_file: a corrupt length sized a std::vector (std::length_error).
      {"item_ids claims 2^60 entries",
       [](const std::string& f) { raw_huge_item_ids(f, hsize_t(1) << 60); },
       [](const SplitFile& s) { s.read_item_ids(); },
       {"item_ids claims 1152921504606846976 entries"}},
      {"row range beyond the split",
       nullptr,
       [](const SplitFile& s) { s.read_rows(split::kTestFoldIn, 2, 4); },
       {"test/fold_in", "out of range"}},
      {"unknown split name", nullptr, [](const SplitFile& s) { s.read_rows("train2", 0, 1); }, {"unknown split"}},
  };
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const SplitRow& row = rows[k];
    SCOPED_TRACE("split file row '" + row.name + "'");
    const std::string file = scratch_dir("mal_split_" + std::to_string(k)) + "/split.h5";
    write_split_file(file, small_split());
    if (row.corrupt) row.corrupt(file);
    try {
      SplitFile s(file);
      if (row.read) row.read(s);
      ADD_FAILURE() << "no InputError";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << "message does not name the file: " << msg;
      for (const auto& p : row.pieces)
        EXPECT_NE(msg.find(p), std::string::npos) << "message '" << msg << "' lacks '" << p << "'";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an InputError: " << e.what();
    }
  }
}
