// libFuzzer target for the HDF5 split-file reader (SplitFile in src/h5_dataset.cpp).
//
// The seed is a valid small split file written once per process with write_split_file (the data of
// tests/common/h5_fixtures.h). The fuzz input is a list of 3-byte patches (offset: 16-bit little
// endian, taken modulo the file size; new byte). An input of length 1 mod 3 ends with a byte that
// truncates the file to (byte + 1) / 256 of its length when that byte is < 255. The patched file is
// opened with SplitFile; every split is read whole and in sub-ranges, plus indptr, item ids, user
// ids and protocol. recvae::InputError is the expected outcome for a broken file; any other
// exception, a crash, a sanitizer report or a hang is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/h5_fixtures.h"
#include "recvae/util/error.h"
#include "recvae/data/h5_dataset.h"

namespace {

struct Seed {
  std::string dir;
  std::string patched;              // the file each input is written to
  std::vector<std::uint8_t> bytes;  // the valid split file
};

const Seed& seed() {
  static const Seed s = [] {
    Seed out;
    out.dir = "/tmp/recvae_fuzz_split." + std::to_string(::getpid());
    std::filesystem::create_directories(out.dir);
    const std::string valid = out.dir + "/valid.h5";
    recvae::write_split_file(valid, recvae::testing::small_split());
    std::ifstream in(valid, std::ios::binary);
    out.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (out.bytes.empty()) {
      std::fprintf(stderr, "fuzz harness: cannot read back %s\n", valid.c_str());
      std::abort();
    }
    out.patched = out.dir + "/patched.h5";
    return out;
  }();
  return s;
}

void exercise(const std::string& path) {
  recvae::SplitFile f(path);
  for (const char* s : {recvae::split::kTrain, recvae::split::kValidationFoldIn, recvae::split::kValidationHoldout,
                        recvae::split::kTestFoldIn, recvae::split::kTestHoldout}) {
    const std::int64_t rows = f.num_rows(s);
    // Row counts come from the file; a corrupted count must not make the harness allocate wildly
    // (the reader itself is only asked for what the file claims).
    const std::int64_t cap = rows < 4096 ? rows : 4096;
    try {
      recvae::CsrMatrix m = f.read_rows(s, 0, cap);
      if (m.rows != cap || m.cols != f.num_items()) std::abort();
    } catch (const recvae::InputError&) {
    }
    for (std::int64_t lo = 0; lo < cap; ++lo) {
      try {
        f.read_rows(s, lo, lo + 1);
      } catch (const recvae::InputError&) {
      }
      try {
        f.read_indptr(s, lo, cap);
      } catch (const recvae::InputError&) {
      }
    }
    try {
      f.read_rows(s, cap / 2, cap);
    } catch (const recvae::InputError&) {
    }
  }
  try {
    f.read_item_ids();
  } catch (const recvae::InputError&) {
  }
  for (const char* w : {"train", "validation", "test"}) {
    try {
      f.read_user_ids(w);
    } catch (const recvae::InputError&) {
    }
  }
  f.read_protocol();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  seed();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Seed& s = seed();
  std::vector<std::uint8_t> bytes = s.bytes;
  std::size_t k = 0;
  for (; k + 3 <= size; k += 3) {
    const std::size_t off =
        (static_cast<std::size_t>(data[k]) | (static_cast<std::size_t>(data[k + 1]) << 8)) % bytes.size();
    bytes[off] = data[k + 2];
  }
  if (size - k == 1 && data[k] < 255) bytes.resize(bytes.size() * (data[k] + 1u) / 256u);
  {
    std::ofstream out(s.patched, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "fuzz harness: cannot write %s\n", s.patched.c_str());
      std::abort();
    }
  }
  try {
    exercise(s.patched);
  } catch (const recvae::InputError&) {
    // Expected for a corrupted file.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FINDING: SplitFile threw a non-InputError exception: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "FINDING: SplitFile threw a non-std exception\n");
    std::abort();
  }
  return 0;
}
