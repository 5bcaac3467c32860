// Raw readers (movielens csv/dat, netflix, msd, csv, recbole), gzip input, CSV quoting and the liang
// directory import.
#include <gtest/gtest.h>
#include <zlib.h>

#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "recvae/util/error.h"
#include "recvae/data/raw_readers.h"
#include "../common/test_util.h"

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

/// One gzip member holding `text` (zlib's deflate with the gzip wrapper, as gzip -6 writes it).
std::string gzip_member(const std::string& text) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
  return out;
}

/// Same dense ids, values and names, in the same order.
void expect_same(const Interactions& a, const Interactions& b, const std::string& what) {
  EXPECT_EQ(a.user, b.user) << what;
  EXPECT_EQ(a.item, b.item) << what;
  EXPECT_EQ(a.value, b.value) << what;
  EXPECT_EQ(a.user_names, b.user_names) << what;
  EXPECT_EQ(a.item_names, b.item_names) << what;
}

/// `lines` rows of `user<sep>item<sep>value` (a few thousand lines: the deflate stream gets
/// dynamic Huffman blocks, not a stored block); `numeric` ids for MovieLens.
std::string rows(int lines, char sep, bool numeric = false) {
  const std::string u = numeric ? "" : "u", i = numeric ? "" : "i";
  std::string s;
  for (int k = 0; k < lines; ++k)
    s += u + std::to_string(k / 7) + sep + i + std::to_string((k * 37) % 211) + sep + std::to_string(1 + k % 5) + "\n";
  return s;
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
  Interactions by_files =
      read_netflix(split_paths(dir + "/combined_data_1.txt," + dir + "/combined_data_2.txt"), false);
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

// ---------------------------------------------------------------------------------------------
// gzip

TEST(Gzip, SameInteractionsAsPlainFile) {
  const std::string dir = scratch_dir("gz_same");
  auto both = [&](const std::string& sub, const std::string& name, const std::string& text) {
    write_text(dir + "/plain_" + sub + "/" + name, text);
    write_text(dir + "/gz_" + sub + "/" + name + ".gz", gzip_member(text));
  };
  both("ml", "ratings.csv", "userId,movieId,rating,timestamp\n" + rows(3000, ',', true));
  both("msd", "train_triplets.txt", rows(3000, '\t'));
  both("csv", "interactions.csv", "user,item,value\n" + rows(3000, ','));
  // Directories find NAME.gz; files are taken by content.
  expect_same(read_movielens(dir + "/gz_ml", false), read_movielens(dir + "/plain_ml", false), "movielens dir");
  expect_same(read_msd(dir + "/gz_msd", false), read_msd(dir + "/plain_msd", false), "msd dir");
  expect_same(read_csv(dir + "/gz_csv", false), read_csv(dir + "/plain_csv", false), "csv dir");
  expect_same(read_csv(dir + "/gz_csv/interactions.csv.gz", false),
              read_csv(dir + "/plain_csv/interactions.csv", false), "csv file");
  EXPECT_EQ(read_csv(dir + "/gz_csv", false).size(), 3000);
  EXPECT_EQ(read_movielens(dir + "/gz_ml", false).num_users(), 429);

  const std::string dat = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n";
  write_text(dir + "/dat/ratings.dat.gz", gzip_member(dat));
  write_text(dir + "/dat/plain.dat", dat);
  expect_same(read_movielens(dir + "/dat", false), read_movielens(dir + "/dat/plain.dat", false), "movielens dat");

  const std::string nf1 = "1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n1488844,4,2005-01-01\n";
  const std::string nf2 = "3:\n822109,1,2005-09-06\n";
  write_text(dir + "/nf_plain/combined_data_1.txt", nf1);
  write_text(dir + "/nf_plain/combined_data_2.txt", nf2);
  write_text(dir + "/nf_gz/combined_data_1.txt.gz", gzip_member(nf1));
  write_text(dir + "/nf_gz/combined_data_2.txt", nf2);
  expect_same(read_netflix({dir + "/nf_gz"}, false), read_netflix({dir + "/nf_plain"}, false), "netflix");
  // gzip -k leaves both spellings: each file is read once.
  write_text(dir + "/nf_plain/combined_data_1.txt.gz", gzip_member(nf1));
  EXPECT_EQ(read_netflix({dir + "/nf_plain"}, false).size(), 4);
  write_text(dir + "/nf_ts/training_set/mv_0000001.txt.gz", gzip_member("1:\n10,4,2005-09-06\n"));
  EXPECT_EQ(read_netflix({dir + "/nf_ts"}, false).size(), 1);
}

TEST(Gzip, DetectedByContentNotName) {
  const std::string dir = scratch_dir("gz_content");
  const std::string text = "user,item\na,b\nc,d\n";
  write_text(dir + "/compressed.csv", gzip_member(text));
  write_text(dir + "/plain.csv.gz", text);
  Interactions a = read_csv(dir + "/compressed.csv", false);
  EXPECT_EQ(a.user_names, (std::vector<std::string>{"a", "c"}));
  expect_same(read_csv(dir + "/plain.csv.gz", false), a, "plain bytes named .gz");
  // A compressed empty file is an empty file.
  write_text(dir + "/empty.csv", gzip_member(""));
  std::string e = error_of([&] { read_csv(dir + "/empty.csv", false); });
  EXPECT_NE(e.find(dir + "/empty.csv: empty file"), std::string::npos) << e;
}

TEST(Gzip, MultiMemberFiles) {
  const std::string dir = scratch_dir("gz_members");
  const std::string head = "user,item,value\n", part1 = rows(2000, ','), part2 = "zed,i9,4\nu1,i400,2\n";
  write_text(dir + "/plain.csv", head + part1 + part2);
  // As `cat a.gz b.gz` makes it, with an empty member between and tape padding after.
  write_text(dir + "/multi.csv",
             gzip_member(head + part1) + gzip_member("") + gzip_member(part2) + std::string(100, '\0'));
  Interactions multi = read_csv(dir + "/multi.csv", false);
  EXPECT_EQ(multi.size(), 2002);
  expect_same(multi, read_csv(dir + "/plain.csv", false), "three members");
  // A member boundary inside a line joins the line, as gzip -d does.
  const std::string all = head + part1 + part2;
  write_text(dir + "/split_line.csv", gzip_member(all.substr(0, 1001)) + gzip_member(all.substr(1001)));
  expect_same(read_csv(dir + "/split_line.csv", false), multi, "member boundary mid-line");
  // Repetitive text compresses ~500x and the last member's size says little about the total: the
  // output buffer has to grow many times over its first guess.
  std::string repetitive = "user,item\n";
  for (int k = 0; k < 200000; ++k) repetitive += "a,b\n";
  write_text(dir + "/grow.csv", gzip_member(repetitive) + gzip_member("c,d\n"));
  Interactions grown = read_csv(dir + "/grow.csv", false);
  EXPECT_EQ(grown.size(), 200001);
  EXPECT_EQ(grown.user_names, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(grown.item.back(), 1u);
}

TEST(Gzip, TruncatedOrCorruptIsInputErrorNamingTheFile) {
  const std::string dir = scratch_dir("gz_bad");
  const std::string gz = gzip_member("user,item,value\n" + rows(3000, ','));
  ASSERT_GT(gz.size(), 1000u);
  for (std::size_t cut : {std::size_t(2), std::size_t(10), gz.size() / 2, gz.size() - 5, gz.size() - 1}) {
    const std::string f = dir + "/cut" + std::to_string(cut) + ".csv.gz";
    write_text(f, gz.substr(0, cut));
    const std::string e = error_of([&] { read_csv(f, false); });
    EXPECT_EQ(e, f + ": truncated gzip data") << "cut at " << cut;
  }
  // A second member cut short.
  write_text(dir + "/cut_member.csv", gz + gzip_member("x,y,1\n").substr(0, 12));
  EXPECT_EQ(error_of([&] { read_csv(dir + "/cut_member.csv", false); }), dir + "/cut_member.csv: truncated gzip data");

  std::string flipped = gz;
  for (std::size_t k = gz.size() / 2; k < gz.size() / 2 + 16; ++k) flipped[k] = static_cast<char>(~flipped[k]);
  write_text(dir + "/flipped.csv.gz", flipped);
  std::string e = error_of([&] { read_csv(dir + "/flipped.csv.gz", false); });
  EXPECT_EQ(e.rfind(dir + "/flipped.csv.gz: corrupt gzip data (zlib: ", 0), 0u) << e;
  // The CRC-32 of the content is checked.
  std::string bad_crc = gz;
  bad_crc[gz.size() - 8] = static_cast<char>(bad_crc[gz.size() - 8] ^ 1);
  write_text(dir + "/crc.csv.gz", bad_crc);
  e = error_of([&] { read_msd(dir + "/crc.csv.gz", false); });
  EXPECT_EQ(e, dir + "/crc.csv.gz: corrupt gzip data (zlib: incorrect data check)");
  // Bad header (unknown compression method).
  std::string bad_method = gz;
  bad_method[2] = 7;
  write_text(dir + "/method.csv.gz", bad_method);
  e = error_of([&] { read_movielens(dir + "/method.csv.gz", false); });
  EXPECT_EQ(e.rfind(dir + "/method.csv.gz: corrupt gzip data (zlib: ", 0), 0u) << e;
  // Bytes after the last member that are neither padding nor another member.
  write_text(dir + "/trailing.csv.gz", gz + "junk");
  e = error_of([&] { read_csv(dir + "/trailing.csv.gz", false); });
  EXPECT_EQ(e.rfind(dir + "/trailing.csv.gz: corrupt gzip data (", 0), 0u) << e;
  // Netflix names the failing file among several.
  write_text(dir + "/nf/combined_data_1.txt", "1:\n5,3,2005\n");
  write_text(dir + "/nf/combined_data_2.txt.gz", gzip_member("2:\n6,4,2005\n").substr(0, 15));
  e = error_of([&] { read_netflix({dir + "/nf"}, false); });
  EXPECT_EQ(e, dir + "/nf/combined_data_2.txt.gz: truncated gzip data");
}

TEST(Gzip, WrittenByTheGzipCommand) {
  if (run_command("command -v gzip").exit_code != 0) GTEST_SKIP() << "no gzip command";
  const std::string dir = scratch_dir("gz_cmd");
  write_text(dir + "/train_triplets.txt", rows(5000, '\t'));
  write_text(dir + "/b.txt", "extra\tS1\t3\n");
  // -k keeps the plain file to compare with; the second member comes from a separate gzip run.
  ASSERT_EQ(run_command(
                "cd " + dir +
                " && gzip -k -9 train_triplets.txt && gzip -c b.txt > b.gz && cat train_triplets.txt.gz b.gz > two.gz")
                .exit_code,
            0);
  Interactions plain = read_msd(dir + "/train_triplets.txt", false);
  expect_same(read_msd(dir + "/train_triplets.txt.gz", false), plain, "gzip -9");
  Interactions two = read_msd(dir + "/two.gz", false);
  EXPECT_EQ(two.size(), plain.size() + 1);
  EXPECT_EQ(two.user_names.back(), "extra");
}

TEST(Gzip, LiangDirectory) {
  const std::string dir = scratch_dir("gz_liang");
  write_text(dir + "/unique_sid.txt.gz", gzip_member("100\n200\n300\n"));
  write_text(dir + "/train.csv.gz", gzip_member("uid,sid\n0,1\n1,0\n1,2\n"));
  write_text(dir + "/validation_tr.csv", "uid,sid\n2,0\n");
  write_text(dir + "/validation_te.csv", "uid,sid\n2,1\n");
  write_text(dir + "/test_tr.csv", "uid,sid\n3,2\n");
  write_text(dir + "/test_te.csv.gz", gzip_member("uid,sid\n3,0\n"));
  SplitData d = read_liang_dir(dir);
  EXPECT_EQ(d.item_ids, (std::vector<std::string>{"100", "200", "300"}));
  EXPECT_EQ(d.train.indices, (std::vector<std::int32_t>{1, 0, 2}));
  EXPECT_EQ(d.test_holdout.indices, (std::vector<std::int32_t>{0}));
}

// ---------------------------------------------------------------------------------------------
// CSV quoting (RFC 4180 within a line)

TEST(CsvQuoting, QuotedFieldsAndHeader) {
  const std::string dir = scratch_dir("csv_quotes");
  write_text(dir + "/q.csv",
             "\"user\",\"item\",\"value, as a number\"\n"
             "\"u216\",\"i1\",1\n"
             "u216,\"i2\",\"2.5\"\n"
             "\"a\"\"b\",i1,3\n"
             "\"x,y\",\"i,2\",4\n"
             "ab\"c,\"\"\"\",5\n"
             " \"padded\" , i1 ,6\n"
             "\"\"\"\"\"\",i1,7\n");
  Interactions d = read_csv(dir + "/q.csv", false);
  EXPECT_EQ(d.user_names, (std::vector<std::string>{"u216", "a\"b", "x,y", "ab\"c", "padded", "\"\""}));
  EXPECT_EQ(d.item_names, (std::vector<std::string>{"i1", "i2", "i,2", "\""}));
  EXPECT_EQ(d.user, (std::vector<std::uint32_t>{0, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(d.item, (std::vector<std::uint32_t>{0, 1, 0, 2, 3, 0, 0}));
  EXPECT_EQ(d.value, (std::vector<float>{1, 2.5f, 3, 4, 5, 6, 7}));
  // A quoted two-column header: no value column.
  write_text(dir + "/two.csv", "\"user\",\"item, id\"\n\"a\",b\n");
  Interactions t = read_csv(dir + "/two.csv", false);
  EXPECT_TRUE(t.value.empty());
  EXPECT_EQ(t.item_names, (std::vector<std::string>{"b"}));
  // One quoted header field holding the comma: fewer than 2 columns.
  write_text(dir + "/one.csv", "\"user,item\"\na,b\n");
  std::string e = error_of([&] { read_csv(dir + "/one.csv", false); });
  EXPECT_NE(e.find("one.csv:1: header"), std::string::npos) << e;
}

TEST(CsvQuoting, MixedQuotingGivesTheSameIdsAsUnquoted) {
  const std::string dir = scratch_dir("csv_mixed");
  std::string plain = "user,item,value\n", mixed = "\"user\",item,\"value\"\n";
  for (int k = 0; k < 3000; ++k) {
    const std::string u = "user" + std::to_string(k / 5), i = "item" + std::to_string((k * 31) % 401),
                      v = std::to_string(k % 7);
    plain += u + "," + i + "," + v + "\n";
    switch (k % 4) {
      case 0:
        mixed += u + "," + i + "," + v + "\n";
        break;
      case 1:
        mixed += "\"" + u + "\"," + i + "," + v + "\n";
        break;
      case 2:
        mixed += u + ",\"" + i + "\",\"" + v + "\"\n";
        break;
      default:
        mixed += "\"" + u + "\",\"" + i + "\"," + v + "\r\n";
        break;
    }
  }
  write_text(dir + "/plain.csv", plain);
  write_text(dir + "/mixed.csv", mixed);
  expect_same(read_csv(dir + "/mixed.csv", false), read_csv(dir + "/plain.csv", false), "mixed quoting");
}

TEST(CsvQuoting, EscapedUserIdsOnConsecutiveLines) {
  // Unescaped ids live in scratch space that the next line overwrites: two different escaped users in a
  // row must not be taken for one.
  const std::string dir = scratch_dir("csv_escaped_run");
  write_text(dir + "/e.csv",
             "user,item\n\"a\"\"1\",x\n\"a\"\"1\",y\n\"b\"\"2\",x\n\"a\"\"1\",z\nplain,x\n\"b\"\"2\",y\n");
  Interactions d = read_csv(dir + "/e.csv", false);
  EXPECT_EQ(d.user_names, (std::vector<std::string>{"a\"1", "b\"2", "plain"}));
  EXPECT_EQ(d.user, (std::vector<std::uint32_t>{0, 0, 1, 0, 2, 1}));
}

TEST(CsvQuoting, BadQuotingNamesFileAndLine) {
  const std::string dir = scratch_dir("csv_bad_quotes");
  write_text(dir + "/open.csv", "user,item\na,b\n\"c,d\n\"e\",f\n");
  std::string e = error_of([&] { read_csv(dir + "/open.csv", false); });
  EXPECT_NE(e.find(dir + "/open.csv:3: unterminated quoted field in column 1"), std::string::npos) << e;
  EXPECT_NE(e.find("newline inside a quoted field is not supported"), std::string::npos) << e;
  write_text(dir + "/open_header.csv", "user,\"item\n");
  e = error_of([&] { read_csv(dir + "/open_header.csv", false); });
  EXPECT_NE(e.find("open_header.csv:1: unterminated quoted field in column 2"), std::string::npos) << e;
  write_text(dir + "/after.csv", "user,item\n\"a\"b,c\n");
  e = error_of([&] { read_csv(dir + "/after.csv", false); });
  EXPECT_NE(e.find("after.csv:2: text after the closing quote of column 1"), std::string::npos) << e;
  write_text(dir + "/empty_id.csv", "user,item\n\"\",c\n");
  e = error_of([&] { read_csv(dir + "/empty_id.csv", false); });
  EXPECT_NE(e.find("empty_id.csv:2: empty user or item id"), std::string::npos) << e;
  write_text(dir + "/short.csv", "user,item,value\n\"a,b\",c\n");
  e = error_of([&] { read_csv(dir + "/short.csv", false); });
  EXPECT_NE(e.find("short.csv:2: expected 3 columns"), std::string::npos) << e;
  // Tab-separated msd ids are taken as they are: quotes are text there.
  write_text(dir + "/msd.txt", "\"u\"\tS1\t2\n");
  EXPECT_EQ(read_msd(dir + "/msd.txt", false).user_names, (std::vector<std::string>{"\"u\""}));
}

// ---------------------------------------------------------------------------------------------
// RecBole atomic .inter files

TEST(Recbole, WithRatingColumn) {
  const std::string dir = scratch_dir("recbole_rating");
  write_text(dir + "/ml-1m.inter",
             "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
             "1\t1193\t5\t978300760\n1\t661\t3\t978302109\n2\t1193\t4.5\t978298413\n");
  Interactions d = read_recbole(dir + "/ml-1m.inter", false);
  EXPECT_EQ(d.user_names, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(d.item_names, (std::vector<std::string>{"1193", "661"}));
  EXPECT_EQ(d.item, (std::vector<std::uint32_t>{0, 1, 0}));
  EXPECT_EQ(d.value, (std::vector<float>{5, 3, 4.5f}));
  // The directory holding it (with the other atomic files beside it).
  write_text(dir + "/ml-1m.item", "item_id:token\tmovie_title:token_seq\n1193\tOne Flew\n");
  write_text(dir + "/ml-1m.user", "user_id:token\tage:token\n1\t1\n");
  expect_same(read_recbole(dir, false), d, "directory");
  write_text(dir + "/bad.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t5\n1\t3\tfive\n");
  std::string e = error_of([&] { read_recbole(dir + "/bad.inter", false); });
  EXPECT_NE(e.find("bad.inter:3: non-numeric value 'five'"), std::string::npos) << e;
}

TEST(Recbole, ColumnsByNameWithoutRating) {
  const std::string dir = scratch_dir("recbole_norating");
  write_text(dir + "/x.inter",
             "item_id:token\treview:token_seq\tuser_id:token\n"
             "B001\tgreat stuff\tA9\nB002\t\tA9\nB001\tmeh\tA7\n");
  Interactions d = read_recbole(dir + "/x.inter", false);
  EXPECT_TRUE(d.value.empty());
  EXPECT_EQ(d.user_names, (std::vector<std::string>{"A9", "A7"}));
  EXPECT_EQ(d.item_names, (std::vector<std::string>{"B001", "B002"}));
  EXPECT_EQ(d.user, (std::vector<std::uint32_t>{0, 0, 1}));
  write_text(dir + "/short.inter", "item_id:token\treview:token_seq\tuser_id:token\nB1\tok\n");
  std::string e = error_of([&] { read_recbole(dir + "/short.inter", false); });
  EXPECT_NE(e.find("short.inter:2: expected 3 columns"), std::string::npos) << e;
}

TEST(Recbole, HeaderWithoutItemIdOrUserId) {
  const std::string dir = scratch_dir("recbole_header");
  write_text(dir + "/a.inter", "user_id:token\tmovie_id:token\trating:float\n1\t2\t3\n");
  std::string e = error_of([&] { read_recbole(dir + "/a.inter", false); });
  EXPECT_NE(e.find(dir + "/a.inter:1: header 'user_id:token\tmovie_id:token"), std::string::npos) << e;
  EXPECT_NE(e.find("has no item_id column"), std::string::npos) << e;
  write_text(dir + "/b.inter", "uid:token\titem_id:token\n1\t2\n");
  e = error_of([&] { read_recbole(dir + "/b.inter", false); });
  EXPECT_NE(e.find("b.inter:1: header"), std::string::npos) << e;
  EXPECT_NE(e.find("has no user_id column"), std::string::npos) << e;
  write_text(dir + "/empty.inter", "\n\n");
  e = error_of([&] { read_recbole(dir + "/empty.inter", false); });
  EXPECT_NE(e.find("empty.inter: empty file"), std::string::npos) << e;
}

TEST(Recbole, DirectoryNeedsExactlyOneInterFile) {
  const std::string none = scratch_dir("recbole_none");
  write_text(none + "/x.item", "item_id:token\n1\n");
  std::string e = error_of([&] { read_recbole(none, false); });
  EXPECT_NE(e.find(none + ": directory holds no RecBole .inter file"), std::string::npos) << e;

  const std::string two = scratch_dir("recbole_two");
  write_text(two + "/a.inter", "user_id:token\titem_id:token\n1\t2\n");
  write_text(two + "/b.inter.gz", gzip_member("user_id:token\titem_id:token\n1\t2\n"));
  e = error_of([&] { read_recbole(two, false); });
  EXPECT_NE(e.find("several .inter files (a.inter, b.inter.gz)"), std::string::npos) << e;

  // Gzip, found by the directory search; a gzip -k twin counts once.
  const std::string gz = scratch_dir("recbole_gz");
  const std::string text = "user_id:token\titem_id:token\trating:float\n" + rows(2000, '\t');
  write_text(gz + "/big.inter.gz", gzip_member(text));
  write_text(two + "/plain.txt", text);
  Interactions d = read_recbole(gz, false);
  EXPECT_EQ(d.size(), 2000);
  expect_same(d, read_recbole(two + "/plain.txt", false), "gzip");
  write_text(gz + "/big.inter", text);
  EXPECT_EQ(read_recbole(gz, false).size(), 2000);
  e = error_of([&] { read_recbole(gz + "/missing.inter", false); });
  EXPECT_NE(e.find("missing.inter: no such file"), std::string::npos) << e;
}
