#include "recvae/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "recvae/train/run_log.h"
#include "recvae/util/run_dir.h"

namespace fs = std::filesystem;

namespace recvae {

// Note [Checkpoint commit]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// A checkpoint is committed in four steps: write `NAME.pt.tmp`, fsync it, rename it to `NAME.pt`,
// then atomically replace the `latest` pointer (a one-line text file, itself written through a
// temporary file and a rename). Readers follow `latest` only. A crash before the last rename
// leaves `latest` naming the previous, complete checkpoint; a crash after it leaves the new one.
// Pruning of old checkpoints happens only after the pointer moved, and never touches the
// checkpoint it names.

namespace {

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

CheckpointStore::CheckpointStore(std::string run_dir, int keep)
    : dir_(RunDir(std::move(run_dir)).checkpoints()), keep_(std::max(1, keep)) {}

std::string CheckpointStore::latest() const {
  std::ifstream in(dir_ + "/latest");
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) return "";
  const std::string path = dir_ + "/" + name;
  if (!fs::exists(path)) throw std::runtime_error(dir_ + "/latest names " + name + ", which does not exist");
  return path;
}

void CheckpointStore::save(const std::string& name,
                           const std::function<void(torch::serialize::OutputArchive&)>& fill) const {
  fs::create_directories(dir_);
  const std::string file = name + ".pt", final_path = dir_ + "/" + file, tmp = final_path + ".tmp";
  torch::serialize::OutputArchive archive;
  fill(archive);
  archive.save_to(tmp);
  fsync_path(tmp);
  // Fault injection for the crash-safety test: kill -9 between the data write and the commit.
  if (const char* f = std::getenv("RECVAE_FAULT_KILL_BEFORE_COMMIT"); f && std::string(f) == name) ::raise(SIGKILL);
  fs::rename(tmp, final_path);
  write_file_atomic(dir_ + "/latest", file + "\n");
  fsync_path(dir_);

  std::vector<fs::path> old;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 3 && n.compare(n.size() - 3, 3, ".pt") == 0 && n != file) old.push_back(e.path());
  }
  std::sort(old.begin(), old.end());
  while (static_cast<int>(old.size()) > keep_ - 1) {
    fs::remove(old.front());
    old.erase(old.begin());
  }
}

void CheckpointStore::load(const std::string& path, const torch::Device& device,
                           const std::function<void(torch::serialize::InputArchive&)>& read) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": not a readable checkpoint");
  }
  read(archive);
}

std::int64_t read_int(torch::serialize::InputArchive& a, const std::string& key) {
  c10::IValue v;
  a.read(key, v);
  return v.toInt();
}

double read_double(torch::serialize::InputArchive& a, const std::string& key) {
  c10::IValue v;
  a.read(key, v);
  return v.toDouble();
}

std::string read_string(torch::serialize::InputArchive& a, const std::string& key) {
  c10::IValue v;
  a.read(key, v);
  return v.toStringRef();
}

}  // namespace recvae
