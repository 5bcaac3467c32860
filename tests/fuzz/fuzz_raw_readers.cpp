// libFuzzer target for the raw-data readers (src/raw_readers.cpp).
//
// Input: the first byte picks the reader (value % 5), the rest is the file content:
//   0 read_movielens  1 read_netflix  2 read_msd  3 read_csv
//   4 read_liang_dir: the content is cut at NUL bytes into train.csv, validation_tr.csv,
//     validation_te.csv, test_tr.csv, test_te.csv (missing pieces: header only); unique_sid.txt
//     lists 8 items.
// The readers must either return or throw recvae::InputError; any other exception, a crash, a
// sanitizer report or a hang is a finding. Files live in a per-process directory under /tmp.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "recvae/util/error.h"
#include "recvae/data/raw_readers.h"

namespace {

const std::string& work_dir() {
  static const std::string dir = [] {
    std::string d = "/tmp/recvae_fuzz_raw." + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

void put(const std::string& path, const char* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

void run(unsigned selector, const char* data, std::size_t size) {
  const std::string& dir = work_dir();
  switch (selector) {
    case 0: {
      const std::string f = dir + "/ratings.in";
      put(f, data, size);
      recvae::Interactions d = recvae::read_movielens(f, false);
      if (d.user.size() != d.item.size() || d.value.size() != d.user.size()) std::abort();
      break;
    }
    case 1: {
      const std::string f = dir + "/netflix.in";
      put(f, data, size);
      recvae::Interactions d = recvae::read_netflix({f}, false);
      if (d.user.size() != d.item.size() || d.value.size() != d.user.size()) std::abort();
      break;
    }
    case 2: {
      const std::string f = dir + "/msd.in";
      put(f, data, size);
      recvae::Interactions d = recvae::read_msd(f, false);
      if (d.user.size() != d.item.size() || d.value.size() != d.user.size()) std::abort();
      break;
    }
    case 3: {
      const std::string f = dir + "/csv.in";
      put(f, data, size);
      recvae::Interactions d = recvae::read_csv(f, false);
      if (d.user.size() != d.item.size() || (!d.value.empty() && d.value.size() != d.user.size())) std::abort();
      break;
    }
    default: {
      const std::string ldir = dir + "/liang";
      std::filesystem::create_directories(ldir);
      put(ldir + "/unique_sid.txt", "10\n11\n12\n13\n14\n15\n16\n17\n", 24);
      const char* names[] = {"train.csv", "validation_tr.csv", "validation_te.csv", "test_tr.csv", "test_te.csv"};
      std::size_t pos = 0;
      for (const char* name : names) {
        if (pos <= size) {
          std::size_t end = pos;
          while (end < size && data[end] != '\0') ++end;
          put(ldir + "/" + name, data + pos, end - pos);
          pos = end + 1;
        } else {
          put(ldir + "/" + name, "uid,sid\n", 8);
        }
      }
      recvae::SplitData d = recvae::read_liang_dir(ldir);
      // What the reader returns must be consistent: an InputError here is a finding.
      try {
        for (const recvae::CsrMatrix* m :
             {&d.train, &d.validation_fold_in, &d.validation_holdout, &d.test_fold_in, &d.test_holdout}) {
          m->validate("liang result");
          if (m->cols != 8) throw recvae::InputError("liang result: wrong column count");
        }
        if (d.validation_fold_in.rows != d.validation_holdout.rows || d.test_fold_in.rows != d.test_holdout.rows)
          throw recvae::InputError("liang result: fold_in/holdout row counts differ");
      } catch (const recvae::InputError& e) {
        std::fprintf(stderr, "FINDING: read_liang_dir returned inconsistent data: %s\n", e.what());
        std::abort();
      }
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned selector = data[0] % 5u;
  try {
    run(selector, reinterpret_cast<const char*>(data + 1), size - 1);
  } catch (const recvae::InputError&) {
    // Expected for malformed input.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FINDING: reader %u threw a non-InputError exception: %s\n", selector, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "FINDING: reader %u threw a non-std exception\n", selector);
    std::abort();
  }
  return 0;
}
