// Raw readers (movielens csv/dat, netflix, msd, csv) and the liang directory import.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "recvae/util/error.h"
#include "recvae/data/raw_readers.h"
#include "../test_util.h"

using namespace recvae;
using namespace recvae::testing;

namespace {

/// (user name, item name) -> value, to compare independent of dense ids.
std::map<std::pair<std::string, std::string>, float> as_map(const Interactions& d) {
  std::map<std::pair<std::string, std::string>, float> m;
  for (std::size_t k = 0; k < d.user.size(); ++k)
    m[{d.user_names.at(d.user[k]), d.item_names.at(d.item[k])}] = d.value.empty() ? 1.0f : d.value[k];
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

}  // namespace

TEST(Readers, MovielensCsv) {
  const std::string dir = scratch_dir("ml_csv");
  write_text(dir + "/ratings.csv",
             "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n"
             "7,31,4.5,1\r\n7,1129,5,2\n\n1000000000000,5,0.5,3\n");
  for (const std::string& path : {dir + "/ratings.csv", dir}) {
    Interactions d = read_movielens(path, false);
    EXPECT_EQ(d.size(), 5);
    EXPECT_EQ(d.num_users(), 3);
    EXPECT_EQ(d.num_items(), 4);
    auto m = as_map(d);
    EXPECT_FLOAT_EQ((m[{"1", "31"}]), 2.5f);
    EXPECT_FLOAT_EQ((m[{"7", "31"}]), 4.5f);
    EXPECT_FLOAT_EQ((m[{"7", "1129"}]), 5.0f);
    EXPECT_FLOAT_EQ((m[{"1000000000000", "5"}]), 0.5f);
    // Same item -> same dense id; order of first appearance.
    EXPECT_EQ(d.item[0], d.item[2]);
    EXPECT_EQ(d.user_names[0], "1");
    EXPECT_EQ(d.item_names[1], "1029");
  }
}

TEST(Readers, MovielensDat) {
  const std::string dir = scratch_dir("ml_dat");
  write_text(dir + "/ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
  Interactions d = read_movielens(dir, false);
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.num_users(), 2);
  EXPECT_EQ(d.num_items(), 2);
  auto m = as_map(d);
  EXPECT_FLOAT_EQ((m[{"2", "1193"}]), 4.0f);
  EXPECT_FLOAT_EQ((m[{"1", "661"}]), 3.0f);
}

TEST(Readers, MovielensErrorsNameFileAndLine) {
  const std::string dir = scratch_dir("ml_bad");
  write_text(dir + "/a.csv", "user,item,rating\n1,2,3\n");
  std::string e = error_of([&] { read_movielens(dir + "/a.csv", false); });
  EXPECT_NE(e.find(dir + "/a.csv:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("header"), std::string::npos) << e;
  write_text(dir + "/b.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,2,x,4\n");
  e = error_of([&] { read_movielens(dir + "/b.csv", false); });
  EXPECT_NE(e.find(dir + "/b.csv:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("non-numeric rating 'x'"), std::string::npos) << e;
  write_text(dir + "/c.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n5,6\n");
  e = error_of([&] { read_movielens(dir + "/c.csv", false); });
  EXPECT_NE(e.find(dir + "/c.csv:3:"), std::string::npos) << e;
  write_text(dir + "/d.dat", "1::2::3::4\nabc::2::3::4\n");
  e = error_of([&] { read_movielens(dir + "/d.dat", false); });
  EXPECT_NE(e.find(":2: non-numeric userId"), std::string::npos) << e;
  e = error_of([&] { read_movielens(dir + "/missing.csv", false); });
  EXPECT_NE(e.find(dir + "/missing.csv: no such file"), std::string::npos) << e;
  const std::string empty_dir = scratch_dir("ml_empty_dir");
  e = error_of([&] { read_movielens(empty_dir, false); });
  EXPECT_NE(e.find("ratings.csv"), std::string::npos) << e;
}

TEST(Readers, NetflixCombinedFiles) {
  const std::string dir = scratch_dir("nf_combined");
  write_text(dir + "/combined_data_1.txt", "1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n1488844,4,2005-01-01\n");
  write_text(dir + "/combined_data_2.txt", "3:\r\n822109,1,2005-09-06\r\n");
  Interactions by_dir = read_netflix({dir}, false);
  EXPECT_EQ(by_dir.size(), 4);
  EXPECT_EQ(by_dir.num_users(), 2);
  EXPECT_EQ(by_dir.num_items(), 3);
  auto m = as_map(by_dir);
  EXPECT_FLOAT_EQ((m[{"1488844", "2"}]), 4.0f);
  EXPECT_FLOAT_EQ((m[{"822109", "3"}]), 1.0f);
  Interactions by_files = read_netflix(split_paths(dir + "/combined_data_1.txt," + dir + "/combined_data_2.txt"), false);
  EXPECT_EQ(as_map(by_files), m);
  Interactions one = read_netflix({dir + "/combined_data_2.txt"}, false);
  EXPECT_EQ(one.size(), 1);

  write_text(dir + "/bad/combined_data_1.txt", "1488844,3,2005-09-06\n");
  std::string e = error_of([&] { read_netflix({dir + "/bad"}, false); });
  EXPECT_NE(e.find("combined_data_1.txt:1:"), std::string::npos) << e;
  write_text(dir + "/bad2/combined_data_1.txt", "1:\n5,x,2005\n");
  e = error_of([&] { read_netflix({dir + "/bad2"}, false); });
  EXPECT_NE(e.find("combined_data_1.txt:2: non-numeric rating"), std::string::npos) << e;
}

TEST(Readers, NetflixTrainingSetDirectory) {
  const std::string dir = scratch_dir("nf_ts");
  write_text(dir + "/training_set/mv_0000001.txt", "1:\n10,4,2005-09-06\n11,2,2005-09-06\n");
  write_text(dir + "/training_set/mv_0000002.txt", "2:\n10,5,2005-09-06\n");
  write_text(dir + "/training_set/README", "not a rating file\n");
  for (const std::string& p : {dir, dir + "/training_set"}) {
    Interactions d = read_netflix({p}, false);
    EXPECT_EQ(d.size(), 3);
    auto m = as_map(d);
    EXPECT_FLOAT_EQ((m[{"10", "2"}]), 5.0f);
    EXPECT_FLOAT_EQ((m[{"11", "1"}]), 2.0f);
  }
}

TEST(Readers, Msd) {
  const std::string dir = scratch_dir("msd");
  write_text(dir + "/train_triplets.txt",
             "b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAKIMP12A8C130995\t1\n"
             "b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAPDEY12A81C210A9\t12\n"
             "85c1f87fea955d09b4bec2e36aee110927aab0a1\tSOAKIMP12A8C130995\t3\n");
  Interactions d = read_msd(dir, false);
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.num_users(), 2);
  EXPECT_EQ(d.num_items(), 2);
  auto m = as_map(d);
  EXPECT_FLOAT_EQ((m[{"b80344d063b5ccb3212f76538f3d9e43d87dca9e", "SOAPDEY12A81C210A9"}]), 12.0f);
  write_text(dir + "/bad.txt", "u1\tS1\t1\nu2 S2 1\n");
  std::string e = error_of([&] { read_msd(dir + "/bad.txt", false); });
  EXPECT_NE(e.find("bad.txt:2:"), std::string::npos) << e;
}

TEST(Readers, CsvStringIds) {
  const std::string dir = scratch_dir("csv");
  write_text(dir + "/a.csv", "user,item\nalice,book-1\nbob,book-2\nalice,book-2\ncarol,\xC3\xA9t\xC3\xA9\n");
  Interactions d = read_csv(dir + "/a.csv", false);
  EXPECT_EQ(d.size(), 4);
  EXPECT_TRUE(d.value.empty());
  EXPECT_EQ(d.user_names, (std::vector<std::string>{"alice", "bob", "carol"}));
  EXPECT_EQ(d.item_names, (std::vector<std::string>{"book-1", "book-2", "\xC3\xA9t\xC3\xA9"}));
  EXPECT_EQ(d.user, (std::vector<std::uint32_t>{0, 1, 0, 2}));
  write_text(dir + "/b.csv", "u,i,v\nx,1,0.5\ny,1,2\n");
  Interactions v = read_csv(dir + "/b.csv", false);
  EXPECT_EQ(v.value, (std::vector<float>{0.5f, 2.0f}));
  write_text(dir + "/c.csv", "u,i,v\nx,1,high\n");
  std::string e = error_of([&] { read_csv(dir + "/c.csv", false); });
  EXPECT_NE(e.find("c.csv:2: non-numeric value 'high'"), std::string::npos) << e;
  write_text(dir + "/d.csv", "u,i\nx\n");
  e = error_of([&] { read_csv(dir + "/d.csv", false); });
  EXPECT_NE(e.find("d.csv:2: expected 2 columns"), std::string::npos) << e;
  // Many distinct string ids (hash table growth).
  std::string big = "user,item\n";
  for (int i = 0; i < 20000; ++i) big += "user" + std::to_string(i % 5000) + ",item" + std::to_string(i % 3001) + "\n";
  write_text(dir + "/big.csv", big);
  Interactions b = read_csv(dir + "/big.csv", false);
  EXPECT_EQ(b.num_users(), 5000);
  EXPECT_EQ(b.num_items(), 3001);
  for (std::size_t k = 0; k < b.user.size(); ++k) {
    ASSERT_EQ(b.user_names[b.user[k]], "user" + std::to_string(k % 5000));
    ASSERT_EQ(b.item_names[b.item[k]], "item" + std::to_string(k % 3001));
  }
}

TEST(Readers, SplitPaths) {
  EXPECT_EQ(split_paths("a,b,,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split_paths("a"), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(split_paths("").empty());
}

TEST(Readers, LiangDirectory) {
  const std::string dir = scratch_dir("liang");
  write_text(dir + "/unique_sid.txt", "100\n200\n300\n400\n");
  write_text(dir + "/unique_uid.txt", "u7\nu3\nu9\nu1\nu5\nu2\nu8\n");
  write_text(dir + "/train.csv", "uid,sid\n0,1\n0,3\n1,0\n2,2\n2,1\n");
  // Validation users 3 and 4; user 4 has no _te rows.
  write_text(dir + "/validation_tr.csv", "uid,sid\n3,0\n3,2\n4,1\n");
  write_text(dir + "/validation_te.csv", "uid,sid\n3,3\n");
  // Test users 5 and 6; user 5 only appears in _te (so the minimum is taken over both files).
  write_text(dir + "/test_tr.csv", "uid,sid\n6,0\n");
  write_text(dir + "/test_te.csv", "uid,sid\n5,2\n6,3\n6,1\n");
  SplitData d = read_liang_dir(dir);
  EXPECT_EQ(d.item_ids, (std::vector<std::string>{"100", "200", "300", "400"}));
  EXPECT_EQ(d.train.rows, 3);
  EXPECT_EQ(d.train.cols, 4);
  EXPECT_EQ(d.train.indptr, (std::vector<std::int64_t>{0, 2, 3, 5}));
  EXPECT_EQ(d.train.indices, (std::vector<std::int32_t>{1, 3, 0, 1, 2}));
  EXPECT_EQ(d.train_user_ids, (std::vector<std::string>{"u7", "u3", "u9"}));
  EXPECT_EQ(d.validation_fold_in.rows, 2);
  EXPECT_EQ(d.validation_holdout.rows, 2);
  EXPECT_EQ(d.validation_fold_in.indices, (std::vector<std::int32_t>{0, 2, 1}));
  EXPECT_EQ(d.validation_holdout.indptr, (std::vector<std::int64_t>{0, 1, 1}));
  EXPECT_EQ(d.validation_user_ids, (std::vector<std::string>{"u1", "u5"}));
  EXPECT_EQ(d.test_fold_in.indptr, (std::vector<std::int64_t>{0, 0, 1}));
  EXPECT_EQ(d.test_holdout.indptr, (std::vector<std::int64_t>{0, 1, 3}));
  EXPECT_EQ(d.test_holdout.indices, (std::vector<std::int32_t>{2, 1, 3}));
  EXPECT_EQ(d.protocol.source_format, "liang");
  for (float v : d.train.data) EXPECT_EQ(v, 1.0f);

  // A sid beyond unique_sid.txt names file and line.
  write_text(dir + "/test_te.csv", "uid,sid\n5,2\n6,4\n");
  std::string e = error_of([&] { read_liang_dir(dir); });
  EXPECT_NE(e.find("test_te.csv:3:"), std::string::npos) << e;
  write_text(dir + "/test_te.csv", "user,item\n5,2\n");
  e = error_of([&] { read_liang_dir(dir); });
  EXPECT_NE(e.find("test_te.csv:1: unexpected header"), std::string::npos) << e;
  const std::string missing = scratch_dir("liang_missing");
  write_text(missing + "/unique_sid.txt", "1\n");
  e = error_of([&] { read_liang_dir(missing); });
  EXPECT_NE(e.find("train.csv: no such file"), std::string::npos) << e;
}
