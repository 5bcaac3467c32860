#include "recvae/train/run_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <filesystem>
#include <stdexcept>

#include "recvae/util/run_dir.h"

namespace fs = std::filesystem;

namespace recvae {

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("write failed: " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
  }
}

namespace {

// Epoch number of a metrics.jsonl record ({"epoch": N, ...}), or -1.
int record_epoch(const std::string& line) {
  const std::string key = "{\"epoch\": ";
  if (line.compare(0, key.size(), key) != 0) return -1;
  return std::atoi(line.c_str() + key.size());
}

}  // namespace

RunLog::RunLog(std::string dir, bool enabled, bool resume, int resume_epochs)
    : dir_(std::move(dir)), enabled_(enabled) {
  const RunDir run(dir_);
  if (!enabled_) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create run directory " + dir_ + ": " + ec.message());
  if (resume) {
    // Records written after the checkpoint (a crash between the two) are dropped: the resumed run
    // writes those epochs again.
    std::string kept;
    std::ifstream in(run.metrics());
    for (std::string line; std::getline(in, line);) {
      const int e = record_epoch(line);
      if (e >= 1 && e <= resume_epochs) kept += line + "\n";
    }
    in.close();
    write_file_atomic(run.metrics(), kept);
    metrics_ = std::fopen(run.metrics().c_str(), "a");
    if (!metrics_) throw std::runtime_error("cannot append to " + run.metrics());
    return;
  }
  bool earlier = false;
  for (const auto& f : run.outputs()) earlier = earlier || fs::exists(f);
  if (earlier) {
    char stamp[32];
    std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
    fs::path archive = fs::path(run.archive()) / stamp;
    for (int i = 1; fs::exists(archive); ++i)
      archive = fs::path(run.archive()) / (std::string(stamp) + "." + std::to_string(i));
    fs::create_directories(archive);
    for (const auto& f : run.outputs())
      if (fs::exists(f)) fs::rename(f, archive / fs::path(f).filename());
    std::fprintf(stderr, "recvae: earlier run files in %s moved to %s\n", dir_.c_str(), archive.c_str());
  }
  metrics_ = std::fopen(run.metrics().c_str(), "w");
  if (!metrics_) throw std::runtime_error("cannot write " + run.metrics());
}

RunLog::~RunLog() {
  if (metrics_) std::fclose(metrics_);
}

void RunLog::write_config(const std::string& yaml) const {
  if (enabled_) write_file_atomic(RunDir(dir_).config(), yaml);
}

void RunLog::append_epoch(const JsonObject& record) {
  if (!enabled_) return;
  std::fprintf(metrics_, "%s\n", record.str().c_str());
  std::fflush(metrics_);
  ::fsync(::fileno(metrics_));
}

void RunLog::write_final(const JsonObject& record) const {
  if (enabled_) write_file_atomic(RunDir(dir_).final_json(), record.str() + "\n");
}

}  // namespace recvae
