// Fast raw-data parsers: whole files are memory-mapped and parsed by hand (memchr + from_chars), ids
// are mapped to dense ids without per-line allocations.
#include "recvae/data/raw_readers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <string_view>
#include <unordered_map>

#include "recvae/util/error.h"
#include "recvae/util/progress.h"

namespace fs = std::filesystem;

namespace recvae {

namespace {

// ---------------------------------------------------------------------------------------------
// Files

constexpr std::int64_t kProgressEvery = 1 << 20;
/// Inputs smaller than this are read without progress lines (they take well under a second).
constexpr std::size_t kProgressMinBytes = std::size_t(32) << 20;
/// Compressed inputs from this size on show inflate progress: text compresses 3-4x, so this is about
/// the plain size from which the parsers report.
constexpr std::size_t kGzipProgressMinBytes = std::size_t(8) << 20;

/// A whole input file in memory: memory-mapped as it is, or, when it starts with the gzip magic bytes,
/// inflated into an owned buffer (all members of a multi-member file). Empty contents give a null view.
class InputFile {
 public:
  InputFile(const std::string& path, bool progress) : path_(path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw InputError(path + ": no such file");
    if (S_ISDIR(st.st_mode)) throw InputError(path + ": is a directory, expected a file");
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw InputError(path + ": cannot open: " + std::strerror(errno));
    size_ = disk_size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw InputError(path + ": cannot map: " + std::strerror(errno));
      }
      ::madvise(p, size_, MADV_SEQUENTIAL);
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
    if (size_ >= 2 && static_cast<unsigned char>(data_[0]) == 0x1f && static_cast<unsigned char>(data_[1]) == 0x8b) {
      try {
        inflate_all(progress);
      } catch (...) {
        release();
        throw;
      }
    }
  }
  ~InputFile() { release(); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  const char* begin() const { return data_; }
  const char* end() const { return data_ + size_; }
  /// Bytes of content (after inflating).
  std::size_t size() const { return size_; }
  /// Bytes on disk (compressed size for gzip input), the unit of multi-file progress.
  std::size_t disk_size() const { return disk_size_; }
  const std::string& path() const { return path_; }

 private:
  void release() {
    if (!data_) return;
    if (owned_)
      std::free(const_cast<char*>(data_));
    else
      ::munmap(const_cast<char*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  void inflate_all(bool progress);

  std::string path_;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t disk_size_ = 0;
  bool owned_ = false;  // data_ is malloc'ed (inflated) rather than mapped
};

void InputFile::inflate_all(bool progress) {
  const auto* in = reinterpret_cast<const unsigned char*>(data_);
  const std::size_t in_size = size_;
  // The trailer's ISIZE is the last member's length mod 2^32, so only a first guess. Untouched pages of
  // a large malloc are never faulted in, so guessing high costs address space, not memory.
  std::size_t isize = 0;
  if (in_size >= 18)
    for (int k = 3; k >= 0; --k) isize = (isize << 8) | in[in_size - 4 + static_cast<std::size_t>(k)];
  std::size_t cap = std::max({isize + 1, in_size * 4, std::size_t(1) << 16});
  // Deflate expands at most ~1032:1, so a garbage ISIZE (truncated file) must not ask for more.
  cap = std::min(cap, in_size * 1032 + (std::size_t(1) << 16));
  char* out = static_cast<char*>(std::malloc(cap));
  if (!out) {
    // Overcommit limits can refuse a guess beyond physical memory; grow from a modest start instead.
    cap = in_size + (std::size_t(1) << 16);
    out = static_cast<char*>(std::malloc(cap));
    if (!out) throw std::bad_alloc();
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {
    std::free(out);
    throw std::bad_alloc();
  }
  // Owns `out` and the zlib state until the inflated buffer replaces the mapping.
  struct Guard {
    z_stream* zs;
    char** out;
    ~Guard() {
      inflateEnd(zs);
      std::free(*out);
    }
  } guard{&zs, &out};
  auto corrupt = [&](const std::string& why) { return InputError(path_ + ": corrupt gzip data (" + why + ")"); };

  Progress prog("inflating " + path_, static_cast<std::int64_t>(in_size), progress && in_size >= kGzipProgressMinBytes);
  // Bounded steps keep zlib's 32-bit counters in range and let progress lines appear.
  constexpr std::size_t kStep = std::size_t(16) << 20;
  std::size_t in_pos = 0, out_pos = 0;
  while (true) {
    if (out_pos == cap) {
      if (cap > std::numeric_limits<std::size_t>::max() / 2) throw std::bad_alloc();
      std::size_t grown = cap * 2;
      char* bigger = static_cast<char*>(std::realloc(out, grown));
      if (!bigger) {
        grown = cap + cap / 4;  // near the memory limit, a smaller step may still fit
        bigger = static_cast<char*>(std::realloc(out, grown));
      }
      if (!bigger) throw std::bad_alloc();
      out = bigger;
      cap = grown;
    }
    zs.next_in = const_cast<unsigned char*>(in + in_pos);
    zs.avail_in = static_cast<uInt>(std::min(in_size - in_pos, kStep));
    zs.next_out = reinterpret_cast<unsigned char*>(out + out_pos);
    zs.avail_out = static_cast<uInt>(std::min(cap - out_pos, kStep));
    const uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    const int rc = ::inflate(&zs, Z_NO_FLUSH);
    in_pos += avail_in - zs.avail_in;
    out_pos += avail_out - zs.avail_out;
    prog.update(static_cast<std::int64_t>(in_pos));
    if (rc == Z_STREAM_END) {
      // Concatenated members (cat a.gz b.gz, pigz, bgzip) form one file, as for gzip -d; so does zero
      // padding after the last member (tape blocks), which gzip skips silently too.
      const std::size_t rest = in_size - in_pos;
      if (rest == 0 || std::all_of(in + in_pos, in + in_size, [](unsigned char c) { return c == 0; })) break;
      if (in[in_pos] != 0x1f || (rest >= 2 && in[in_pos + 1] != 0x8b))
        throw corrupt("unexpected bytes after the gzip stream at offset " + std::to_string(in_pos));
      if (inflateReset(&zs) != Z_OK) throw corrupt("zlib: cannot reset");
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR) {
      if (zs.avail_out == 0 || (zs.avail_in == 0 && in_pos < in_size)) continue;  // output full or step used up
      if (in_pos == in_size) throw InputError(path_ + ": truncated gzip data");
      throw corrupt("zlib: no progress");
    }
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc == Z_NEED_DICT) throw corrupt("zlib: needs a preset dictionary");
    throw corrupt(std::string("zlib: ") + (zs.msg ? zs.msg : "error " + std::to_string(rc)));
  }
  prog.finish();
  ::munmap(const_cast<char*>(data_), size_);
  data_ = nullptr;
  size_ = out_pos;
  if (out_pos == 0) return;  // out is freed by the guard
  // Give back the unused tail of the guess (mremap for large blocks, no copy).
  char* fitted = static_cast<char*>(std::realloc(out, out_pos));
  data_ = fitted ? fitted : out;
  owned_ = true;
  out = nullptr;
}

/// Iterates the lines of a buffer ('\n' or "\r\n"), counting them from 1.
struct LineReader {
  const char* p;
  const char* end;
  std::int64_t line_no = 0;
  LineReader(const char* b, const char* e) : p(b), end(e) {}
  bool next(std::string_view& line) {
    if (p >= end) return false;
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* e = nl ? nl : end;
    const char* b = p;
    p = nl ? nl + 1 : end;
    ++line_no;
    if (e > b && e[-1] == '\r') --e;
    // Spreadsheet exports start with a UTF-8 byte order mark; it is no part of the first field.
    if (line_no == 1 && e - b >= 3 && std::memcmp(b, "\xEF\xBB\xBF", 3) == 0) b += 3;
    line = std::string_view(b, static_cast<std::size_t>(e - b));
    return true;
  }
};

/// Splits `line` at `sep` into at most `max` fields; returns the number of fields found (may be more
/// than max: the last stored field then holds only its own text, the rest is dropped).
int split_fields(std::string_view line, char sep, std::string_view* fields, int max) {
  int n = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = line.find(sep, start);
    if (n < max) fields[n] = line.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
    ++n;
    if (pos == std::string_view::npos) return n;
    start = pos + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool parse_int(std::string_view s, std::int64_t& out) {
  s = trim(s);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_float(std::string_view s, float& out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::string quoted(std::string_view s) {
  if (s.size() > 40) return "'" + std::string(s.substr(0, 40)) + "...'";
  return "'" + std::string(s) + "'";
}

[[noreturn]] void parse_error(const std::string& file, std::int64_t line, const std::string& problem) {
  throw InputError(file + ":" + std::to_string(line) + ": " + problem);
}

// ---------------------------------------------------------------------------------------------
// Id maps

/// Integer id -> dense id: a direct table for ids in [0, 2^27), a hash map beyond.
class IntIdMap {
 public:
  std::uint32_t get(std::int64_t key) {
    if (key >= 0 && key < kDirectLimit) {
      const auto k = static_cast<std::size_t>(key);
      if (k >= direct_.size()) direct_.resize(std::max<std::size_t>(k + 1, direct_.size() * 2), 0);
      std::uint32_t& slot = direct_[k];
      if (slot == 0) {
        keys_.push_back(key);
        slot = static_cast<std::uint32_t>(keys_.size());
      }
      return slot - 1;
    }
    auto [it, added] = other_.try_emplace(key, static_cast<std::uint32_t>(keys_.size()));
    if (added) keys_.push_back(key);
    return it->second;
  }
  std::size_t size() const { return keys_.size(); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(keys_.size());
    for (std::int64_t k : keys_) out.push_back(std::to_string(k));
    return out;
  }

 private:
  static constexpr std::int64_t kDirectLimit = std::int64_t(1) << 27;
  std::vector<std::uint32_t> direct_;  // dense id + 1, 0 = absent
  std::unordered_map<std::int64_t, std::uint32_t> other_;
  std::vector<std::int64_t> keys_;
};

/// String id -> dense id: open addressing over hashes, the strings kept in one arena.
class StrIdMap {
 public:
  StrIdMap() : slots_(1024), mask_(1023) {}
  std::uint32_t get(std::string_view s) {
    const std::uint64_t h = hash(s);
    std::size_t i = static_cast<std::size_t>(h) & mask_;
    while (true) {
      Slot& slot = slots_[i];
      if (slot.id == kEmpty) break;
      if (slot.hash == h && view(slot.id) == s) return slot.id;
      i = (i + 1) & mask_;
    }
    const auto id = static_cast<std::uint32_t>(offsets_.size());
    offsets_.push_back(arena_.size());
    arena_.append(s.data(), s.size());
    lengths_.push_back(static_cast<std::uint32_t>(s.size()));
    slots_[i] = Slot{h, id};
    if (offsets_.size() * 2 > slots_.size()) grow();
    return id;
  }
  std::size_t size() const { return offsets_.size(); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(offsets_.size());
    for (std::uint32_t id = 0; id < offsets_.size(); ++id) out.emplace_back(view(id));
    return out;
  }

 private:
  static constexpr std::uint32_t kEmpty = std::numeric_limits<std::uint32_t>::max();
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t id = kEmpty;
  };
  std::string_view view(std::uint32_t id) const { return std::string_view(arena_).substr(offsets_[id], lengths_[id]); }
  static std::uint64_t hash(std::string_view s) {
    std::uint64_t h = 0x243F6A8885A308D3ull ^ s.size();
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0x9E3779B97F4A7C15ull;
      h ^= h >> 29;
    }
    std::uint64_t tail = 0;
    std::memcpy(&tail, s.data() + i, s.size() - i);
    h = (h ^ tail) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    return h ^ (h >> 32);
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.id == kEmpty) continue;
      std::size_t i = static_cast<std::size_t>(s.hash) & mask_;
      while (slots_[i].id != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::size_t mask_;
  std::string arena_;
  std::vector<std::size_t> offsets_;
  std::vector<std::uint32_t> lengths_;
};

void reserve_for(Interactions& out, std::size_t bytes, std::size_t bytes_per_line, bool with_value) {
  const std::size_t n = bytes / std::max<std::size_t>(bytes_per_line, 1) + 16;
  out.user.reserve(out.user.size() + n);
  out.item.reserve(out.item.size() + n);
  if (with_value) out.value.reserve(out.value.size() + n);
}

/// Average length of the first lines of a buffer (to size the output vectors).
std::size_t sample_line_length(const char* b, const char* e) {
  const std::size_t span = std::min<std::size_t>(static_cast<std::size_t>(e - b), 1 << 16);
  std::size_t lines = static_cast<std::size_t>(std::count(b, b + span, '\n'));
  return lines > 1 ? span / lines : 32;
}

bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}
bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

/// `dir/name`, else `dir/name.gz` when only that exists; empty when neither does.
std::string plain_or_gz(const std::string& dir, const std::string& name) {
  const std::string plain = (fs::path(dir) / name).string();
  if (exists(plain)) return plain;
  if (exists(plain + ".gz")) return plain + ".gz";
  return {};
}

std::string file_in(const std::string& path, std::initializer_list<const char*> names, const char* what) {
  if (!exists(path)) throw InputError(path + ": no such file");
  if (!is_dir(path)) return path;
  for (const char* n : names) {
    std::string found = plain_or_gz(path, n);
    if (!found.empty()) return found;
  }
  std::string list;
  for (const char* n : names) list += std::string(list.empty() ? "" : " or ") + n;
  throw InputError(path + ": directory holds no " + what + " file (" + list + ", or the same with .gz)");
}

// ---------------------------------------------------------------------------------------------
// MovieLens

void parse_movielens(const InputFile& f, Interactions& out, bool progress) {
  LineReader lines(f.begin(), f.end());
  std::string_view line;
  // Detect the layout from the first non-empty line.
  const char* probe = f.begin();
  while (probe < f.end() && (*probe == '\n' || *probe == '\r')) ++probe;
  // An empty file maps to a null view: memchr must not see a null pointer, even for 0 bytes.
  if (probe == f.end()) throw InputError(f.path() + ": empty file");
  const char* probe_end = static_cast<const char*>(std::memchr(probe, '\n', static_cast<std::size_t>(f.end() - probe)));
  std::string_view first(probe, static_cast<std::size_t>((probe_end ? probe_end : f.end()) - probe));
  if (first.empty()) throw InputError(f.path() + ": empty file");
  const bool dat = first.find("::") != std::string_view::npos;
  const std::string columns = dat ? "userId::movieId::rating::timestamp" : "userId,movieId,rating,timestamp";
  if (!dat) {
    // ratings.csv starts with its header.
    while (lines.next(line) && trim(line).empty()) {
    }
    std::string_view h[4];
    int n = split_fields(line, ',', h, 4);
    if (n < 3 || trim(h[0]) != "userId" || trim(h[1]) != "movieId" || trim(h[2]) != "rating")
      parse_error(f.path(), lines.line_no, "unexpected header " + quoted(line) + ", expected " + columns);
  }
  reserve_for(out, f.size(), sample_line_length(f.begin(), f.end()), true);
  IntIdMap users, items;
  Progress prog("reading " + f.path(), static_cast<std::int64_t>(f.size()), progress && f.size() >= kProgressMinBytes);
  std::int64_t last_user_key = std::numeric_limits<std::int64_t>::min();
  std::uint32_t last_user = 0;
  std::string_view fld[4];
  while (lines.next(line)) {
    if (line.empty()) continue;
    int n;
    if (dat) {
      // Split at "::" by hand.
      n = 0;
      std::size_t start = 0;
      while (n < 4) {
        std::size_t pos = line.find("::", start);
        fld[n++] = line.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
        if (pos == std::string_view::npos) break;
        start = pos + 2;
      }
    } else {
      n = split_fields(line, ',', fld, 4);
    }
    if (n < 3) parse_error(f.path(), lines.line_no, "expected the columns " + columns + ", got " + quoted(line));
    std::int64_t u, i;
    float r;
    if (!parse_int(fld[0], u)) parse_error(f.path(), lines.line_no, "non-numeric userId " + quoted(fld[0]));
    if (!parse_int(fld[1], i)) parse_error(f.path(), lines.line_no, "non-numeric movieId " + quoted(fld[1]));
    if (!parse_float(fld[2], r)) parse_error(f.path(), lines.line_no, "non-numeric rating " + quoted(fld[2]));
    if (u != last_user_key) {
      last_user = users.get(u);
      last_user_key = u;
    }
    out.user.push_back(last_user);
    out.item.push_back(items.get(i));
    out.value.push_back(r);
    if ((lines.line_no & (kProgressEvery - 1)) == 0) prog.update(lines.p - f.begin());
  }
  prog.update(static_cast<std::int64_t>(f.size()));
  prog.finish();
  if (out.user.empty()) throw InputError(f.path() + ": no ratings in the file");
  out.user_names = users.names();
  out.item_names = items.names();
}

// ---------------------------------------------------------------------------------------------
// Netflix

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The files `prefix*suffix` or `prefix*suffix.gz` in `dir`, sorted by name. When `gzip -k` left both
/// `x` and `x.gz`, only `x` is taken: reading both would count every rating twice.
std::vector<std::string> sorted_files(const std::string& dir, const std::string& prefix, const std::string& suffix) {
  std::map<std::string, std::string> by_stem;  // name without .gz -> path
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const bool gz = ends_with(name, suffix + ".gz");
    const std::string stem = gz ? name.substr(0, name.size() - 3) : name;
    if (stem.size() < prefix.size() + suffix.size() || stem.compare(0, prefix.size(), prefix) != 0 ||
        !ends_with(stem, suffix))
      continue;
    auto [it, added] = by_stem.try_emplace(stem, entry.path().string());
    if (!added && !gz) it->second = entry.path().string();
  }
  std::vector<std::string> out;
  for (auto& [stem, file] : by_stem) out.push_back(file);
  return out;
}

std::vector<std::string> netflix_files(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    if (!exists(p)) throw InputError(p + ": no such file");
    if (!is_dir(p)) {
      files.push_back(p);
      continue;
    }
    std::vector<std::string> found = sorted_files(p, "combined_data_", ".txt");
    if (found.empty()) {
      const std::string ts = (fs::path(p) / "training_set").string();
      found = sorted_files(is_dir(ts) ? ts : p, "mv_", ".txt");
    }
    if (found.empty())
      throw InputError(
          p + ": directory holds no Netflix files (combined_data_*.txt, training_set/mv_*.txt, or the same with .gz)");
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace

std::vector<std::string> split_paths(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t pos = list.find(',', start);
    std::string piece = list.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    if (!piece.empty()) out.push_back(piece);
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

Interactions read_movielens(const std::string& path, bool progress) {
  const std::string file = file_in(path, {"ratings.csv", "ratings.dat"}, "MovieLens ratings");
  InputFile f(file, progress);
  Interactions out;
  out.source = file;
  parse_movielens(f, out, progress);
  return out;
}

Interactions read_netflix(const std::vector<std::string>& paths, bool progress) {
  if (paths.empty()) throw InputError("netflix: no input files given");
  const std::vector<std::string> files = netflix_files(paths);
  std::int64_t total_bytes = 0;
  for (const auto& f : files) total_bytes += static_cast<std::int64_t>(fs::file_size(f));
  Interactions out;
  out.source = paths.size() == 1 ? paths[0] : paths[0] + ",...";
  {
    std::size_t est = static_cast<std::size_t>(total_bytes) / 20 + 16;
    out.user.reserve(est);
    out.item.reserve(est);
    out.value.reserve(est);
  }
  IntIdMap users, items;
  Progress prog("reading Netflix files", total_bytes,
                progress && total_bytes >= static_cast<std::int64_t>(kProgressMinBytes));
  std::int64_t done_bytes = 0;
  std::string_view fld[3];
  for (const std::string& file : files) {
    // One progress line for all files, counted in bytes on disk (compressed for .gz).
    InputFile f(file, false);
    const double disk_per_byte = f.size() ? static_cast<double>(f.disk_size()) / static_cast<double>(f.size()) : 0.0;
    LineReader lines(f.begin(), f.end());
    std::string_view line;
    bool have_movie = false;
    std::uint32_t movie = 0;
    while (lines.next(line)) {
      if (line.empty()) continue;
      if (line.back() == ':') {
        std::int64_t m;
        if (!parse_int(line.substr(0, line.size() - 1), m))
          parse_error(file, lines.line_no, "non-numeric MovieID " + quoted(line));
        movie = items.get(m);
        have_movie = true;
        continue;
      }
      if (!have_movie) parse_error(file, lines.line_no, "rating line before the first 'MovieID:' line");
      int n = split_fields(line, ',', fld, 3);
      if (n < 2) parse_error(file, lines.line_no, "expected CustomerID,Rating,Date, got " + quoted(line));
      std::int64_t c;
      float r;
      if (!parse_int(fld[0], c)) parse_error(file, lines.line_no, "non-numeric CustomerID " + quoted(fld[0]));
      if (!parse_float(fld[1], r)) parse_error(file, lines.line_no, "non-numeric rating " + quoted(fld[1]));
      out.user.push_back(users.get(c));
      out.item.push_back(movie);
      out.value.push_back(r);
      if ((lines.line_no & (kProgressEvery - 1)) == 0)
        prog.update(done_bytes + static_cast<std::int64_t>(static_cast<double>(lines.p - f.begin()) * disk_per_byte));
    }
    done_bytes += static_cast<std::int64_t>(f.disk_size());
    prog.update(done_bytes);
  }
  prog.finish();
  if (out.user.empty()) throw InputError(out.source + ": no ratings in the Netflix files");
  out.user_names = users.names();
  out.item_names = items.names();
  return out;
}

namespace {

/// Splits lines into fields at `sep`. With `quotes`, fields follow RFC 4180 within one line: a field
/// that starts with '"' (after blanks) runs to the closing '"', "" inside it is one '"', and a
/// separator inside it is text. A '"' inside an unquoted field is text (as for Python's csv module).
/// Fields are views into the line, except unescaped quoted fields, which live in the splitter
/// until the next split() (owned(k) tells which).
class FieldSplitter {
 public:
  FieldSplitter(char sep, bool quotes, int max)
      : sep_(sep),
        quotes_(quotes),
        fields_(static_cast<std::size_t>(max)),
        scratch_(static_cast<std::size_t>(max)),
        owned_(static_cast<std::size_t>(max), 0) {}

  /// Returns the number of fields in `line` (fields beyond the first `max` are counted, not kept).
  int split(std::string_view line, const std::string& file, std::int64_t line_no) {
    if (any_owned_) std::fill(owned_.begin(), owned_.end(), 0);
    any_owned_ = false;
    const int max = static_cast<int>(fields_.size());
    // Fast path: most lines of most files hold no quote at all.
    if (!quotes_ || std::memchr(line.data(), '"', line.size()) == nullptr)
      return split_fields(line, sep_, fields_.data(), max);
    int n = 0;
    std::size_t pos = 0;
    while (true) {
      std::size_t q = pos;
      while (q < line.size() && line[q] != sep_ && (line[q] == ' ' || line[q] == '\t')) ++q;
      std::string_view field;
      if (q < line.size() && line[q] == '"') {
        bool doubled = false;
        std::size_t close = q + 1;
        while (true) {
          close = line.find('"', close);
          if (close == std::string_view::npos)
            parse_error(file, line_no,
                        "unterminated quoted field in column " + std::to_string(n + 1) +
                            " (a newline inside a quoted field is not supported)");
          if (close + 1 < line.size() && line[close + 1] == '"') {
            doubled = true;
            close += 2;
            continue;
          }
          break;
        }
        field = line.substr(q + 1, close - q - 1);
        pos = close + 1;
        for (; pos < line.size() && line[pos] != sep_; ++pos)
          if (line[pos] != ' ' && line[pos] != '\t')
            parse_error(file, line_no,
                        "text after the closing quote of column " + std::to_string(n + 1) + " in " + quoted(line));
        if (doubled && n < max) {
          std::string& s = scratch_[static_cast<std::size_t>(n)];
          s.clear();
          for (std::size_t k = 0; k < field.size(); ++k) {
            s.push_back(field[k]);
            if (field[k] == '"') ++k;  // the second quote of a pair
          }
          field = s;
          owned_[static_cast<std::size_t>(n)] = 1;
          any_owned_ = true;
        }
      } else {
        const std::size_t e = line.find(sep_, pos);
        field = line.substr(pos, e == std::string_view::npos ? std::string_view::npos : e - pos);
        pos = e == std::string_view::npos ? line.size() : e;
      }
      if (n < max) fields_[static_cast<std::size_t>(n)] = field;
      ++n;
      if (pos >= line.size()) return n;
      ++pos;  // past the separator; a separator at the very end is followed by one empty field
    }
  }
  std::string_view operator[](int k) const { return fields_[static_cast<std::size_t>(k)]; }
  /// Whether field k is held by the splitter (so it changes with the next split()).
  bool owned(int k) const { return owned_[static_cast<std::size_t>(k)] != 0; }

 private:
  char sep_;
  bool quotes_;
  std::vector<std::string_view> fields_;
  std::vector<std::string> scratch_;
  std::vector<unsigned char> owned_;
  bool any_owned_ = false;
};

/// Where a string-id file keeps its columns.
struct ColumnLayout {
  char sep = ',';
  bool quotes = false;  ///< RFC 4180 quoting (csv)
  int user = 0, item = 1;
  int value = -1;       ///< -1: no value column, every value is 1
  std::string columns;  ///< the expected columns, for messages
};

/// Shared body of the string-id readers: the lines left in `lines` (after any header) are data.
void parse_string_ids(const InputFile& f, LineReader& lines, const ColumnLayout& layout, Interactions& out,
                      bool progress) {
  const int need = std::max({layout.user, layout.item, layout.value}) + 1;
  FieldSplitter fld(layout.sep, layout.quotes, need);
  reserve_for(out, f.size(), sample_line_length(f.begin(), f.end()), layout.value >= 0);
  StrIdMap users, items;
  Progress prog("reading " + f.path(), static_cast<std::int64_t>(f.size()), progress && f.size() >= kProgressMinBytes);
  std::string_view line;
  // Input files are usually grouped by user: one lookup per run of lines. The key is a view into the
  // file, or into last_user_store when the id was unescaped into the splitter's scratch space.
  std::string_view last_user_key;
  std::string last_user_store;
  std::uint32_t last_user = 0;
  bool have_last = false;
  while (lines.next(line)) {
    if (line.empty()) continue;
    const int n = fld.split(line, f.path(), lines.line_no);
    if (n < need)
      parse_error(f.path(), lines.line_no,
                  "expected " + std::to_string(need) + " columns (" + layout.columns + "), got " + quoted(line));
    std::string_view u = trim(fld[layout.user]), i = trim(fld[layout.item]);
    if (u.empty() || i.empty()) parse_error(f.path(), lines.line_no, "empty user or item id");
    if (!have_last || u != last_user_key) {
      last_user = users.get(u);
      if (fld.owned(layout.user)) {
        last_user_store.assign(u.data(), u.size());
        last_user_key = last_user_store;
      } else {
        last_user_key = u;
      }
      have_last = true;
    }
    out.user.push_back(last_user);
    out.item.push_back(items.get(i));
    if (layout.value >= 0) {
      float v;
      if (!parse_float(fld[layout.value], v))
        parse_error(f.path(), lines.line_no, "non-numeric value " + quoted(fld[layout.value]));
      out.value.push_back(v);
    }
    if ((lines.line_no & (kProgressEvery - 1)) == 0) prog.update(lines.p - f.begin());
  }
  prog.update(static_cast<std::int64_t>(f.size()));
  prog.finish();
  if (out.user.empty()) throw InputError(f.path() + ": no interactions in the file");
  out.user_names = users.names();
  out.item_names = items.names();
}

/// Reads the first non-empty line of `lines` into `line`; an empty file is an error.
void header_line(const InputFile& f, LineReader& lines, std::string_view& line) {
  bool got = false;
  while ((got = lines.next(line)) && trim(line).empty()) {
  }
  if (!got) throw InputError(f.path() + ": empty file");
}

/// The single `*.inter` (or `*.inter.gz`) file of a RecBole dataset directory.
std::string inter_file_in(const std::string& dir) {
  std::map<std::string, std::string> by_stem;  // name without .gz -> path, the plain file preferred
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const bool gz = ends_with(name, ".inter.gz");
    if (!gz && !ends_with(name, ".inter")) continue;
    auto [it, added] = by_stem.try_emplace(gz ? name.substr(0, name.size() - 3) : name, entry.path().string());
    if (!added && !gz) it->second = entry.path().string();
  }
  if (by_stem.empty()) throw InputError(dir + ": directory holds no RecBole .inter file (*.inter or *.inter.gz)");
  if (by_stem.size() > 1) {
    std::string names;
    for (const auto& [stem, file] : by_stem) names += (names.empty() ? "" : ", ") + fs::path(file).filename().string();
    throw InputError(dir + ": directory holds several .inter files (" + names + "); give one as the input");
  }
  return by_stem.begin()->second;
}

}  // namespace

Interactions read_msd(const std::string& path, bool progress) {
  const std::string file = file_in(path, {"train_triplets.txt"}, "taste profile");
  InputFile f(file, progress);
  Interactions out;
  out.source = file;
  LineReader lines(f.begin(), f.end());
  ColumnLayout layout;
  layout.sep = '\t';
  layout.value = 2;
  layout.columns = "user<TAB>song<TAB>count";
  parse_string_ids(f, lines, layout, out, progress);
  return out;
}

Interactions read_csv(const std::string& path, bool progress) {
  const std::string file = file_in(path, {"ratings.csv", "interactions.csv"}, "CSV");
  InputFile f(file, progress);
  Interactions out;
  out.source = file;
  LineReader lines(f.begin(), f.end());
  ColumnLayout layout;
  layout.quotes = true;
  layout.columns = "user,item[,value]";
  std::string_view line;
  header_line(f, lines, line);
  FieldSplitter header(',', true, 3);
  const int cols = header.split(line, file, lines.line_no);
  if (cols < 2)
    parse_error(file, lines.line_no,
                "header " + quoted(line) + " has fewer than 2 columns, expected " + layout.columns);
  layout.value = cols >= 3 ? 2 : -1;
  parse_string_ids(f, lines, layout, out, progress);
  return out;
}

Interactions read_recbole(const std::string& path, bool progress) {
  if (!exists(path)) throw InputError(path + ": no such file");
  const std::string file = is_dir(path) ? inter_file_in(path) : path;
  InputFile f(file, progress);
  Interactions out;
  out.source = file;
  LineReader lines(f.begin(), f.end());
  ColumnLayout layout;
  layout.sep = '\t';
  layout.user = layout.item = -1;
  layout.columns = "user_id:token<TAB>item_id:token[<TAB>rating:float]";
  std::string_view line;
  header_line(f, lines, line);
  // Header fields are `name:type`; columns are found by name, in any order, others ignored.
  std::size_t start = 0;
  for (int col = 0;; ++col) {
    const std::size_t tab = line.find('\t', start);
    std::string_view field =
        trim(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
    const std::string_view name = trim(field.substr(0, field.find(':')));
    if (name == "user_id" && layout.user < 0)
      layout.user = col;
    else if (name == "item_id" && layout.item < 0)
      layout.item = col;
    else if (name == "rating" && layout.value < 0)
      layout.value = col;
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  if (layout.user < 0 || layout.item < 0)
    parse_error(file, lines.line_no,
                "header " + quoted(line) + " has no " + (layout.user < 0 ? "user_id" : "item_id") +
                    " column, expected " + layout.columns);
  parse_string_ids(f, lines, layout, out, progress);
  return out;
}

// ---------------------------------------------------------------------------------------------
// liang

namespace {

struct UidSid {
  std::vector<std::int64_t> uid, sid;
  std::vector<std::int64_t> line;
};

UidSid read_uid_sid(const std::string& file) {
  InputFile f(file, false);
  LineReader lines(f.begin(), f.end());
  std::string_view line;
  bool got = false;
  while ((got = lines.next(line)) && trim(line).empty()) {
  }
  if (!got) throw InputError(file + ": empty file, expected a header uid,sid");
  std::string_view h[2];
  int n = split_fields(line, ',', h, 2);
  int uc = -1;
  if (n == 2 && trim(h[0]) == "uid" && trim(h[1]) == "sid")
    uc = 0;
  else if (n == 2 && trim(h[0]) == "sid" && trim(h[1]) == "uid")
    uc = 1;
  if (uc < 0) parse_error(file, lines.line_no, "unexpected header " + quoted(line) + ", expected uid,sid");
  UidSid out;
  std::string_view fld[2];
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    if (split_fields(line, ',', fld, 2) != 2)
      parse_error(file, lines.line_no, "expected 2 columns uid,sid, got " + quoted(line));
    std::int64_t u, s;
    if (!parse_int(fld[uc], u) || u < 0) parse_error(file, lines.line_no, "bad uid " + quoted(fld[uc]));
    if (!parse_int(fld[1 - uc], s) || s < 0) parse_error(file, lines.line_no, "bad sid " + quoted(fld[1 - uc]));
    out.uid.push_back(u);
    out.sid.push_back(s);
    out.line.push_back(lines.line_no);
  }
  return out;
}

std::vector<std::string> read_lines(const std::string& file) {
  InputFile f(file, false);
  LineReader lines(f.begin(), f.end());
  std::string_view line;
  std::vector<std::string> out;
  while (lines.next(line)) {
    line = trim(line);
    if (!line.empty()) out.emplace_back(line);
  }
  return out;
}

CsrMatrix to_csr(const UidSid& t, std::int64_t base, std::int64_t rows, std::int64_t cols, const std::string& file) {
  std::vector<std::int64_t> r(t.uid.size());
  std::vector<std::int32_t> c(t.uid.size());
  std::vector<float> v(t.uid.size(), 1.0f);
  for (std::size_t k = 0; k < t.uid.size(); ++k) {
    if (t.sid[k] >= cols)
      parse_error(
          file, t.line[k],
          "sid " + std::to_string(t.sid[k]) + " out of range: unique_sid.txt lists " + std::to_string(cols) + " items");
    r[k] = t.uid[k] - base;
    c[k] = static_cast<std::int32_t>(t.sid[k]);
  }
  CsrMatrix m = CsrMatrix::from_triplets(rows, cols, r, c, v);
  std::fill(m.data.begin(), m.data.end(), 1.0f);  // duplicates binarised
  return m;
}

}  // namespace

SplitData read_liang_dir(const std::string& dir) {
  if (!exists(dir)) throw InputError(dir + ": no such file");
  if (!is_dir(dir)) throw InputError(dir + ": expected a directory with unique_sid.txt, train.csv, ...");
  auto at = [&](const char* name) {
    std::string p = plain_or_gz(dir, name);
    if (p.empty()) throw InputError((fs::path(dir) / name).string() + ": no such file");
    return p;
  };
  SplitData out;
  out.item_ids = read_lines(at("unique_sid.txt"));
  const auto cols = static_cast<std::int64_t>(out.item_ids.size());
  if (cols == 0) throw InputError(at("unique_sid.txt") + ": no items");
  std::vector<std::string> uids;
  const std::string uid_file = plain_or_gz(dir, "unique_uid.txt");
  if (!uid_file.empty()) uids = read_lines(uid_file);
  auto name_of = [&](std::int64_t uid) {
    return uid < static_cast<std::int64_t>(uids.size()) ? uids[static_cast<std::size_t>(uid)] : std::to_string(uid);
  };
  // Every uid in [lo, hi] becomes a row. Consecutive uids (or a unique_uid.txt naming them) keep the
  // row count within the input's size; a stray huge uid must not make us allocate (or overflow) rows.
  auto check_span = [&](std::int64_t lo, std::int64_t hi, std::size_t interactions, const std::string& files) {
    const auto limit = static_cast<std::int64_t>(interactions + uids.size());
    if (hi - lo >= limit)
      throw InputError(files + ": uids span [" + std::to_string(lo) + ", " + std::to_string(hi) + "] for only " +
                       std::to_string(interactions) + " interactions (and " + std::to_string(uids.size()) +
                       " ids in unique_uid.txt): uids must be consecutive");
  };

  {
    const std::string f = at("train.csv");
    UidSid t = read_uid_sid(f);
    if (t.uid.empty()) throw InputError(f + ": no interactions");
    const std::int64_t max_uid = *std::max_element(t.uid.begin(), t.uid.end());
    check_span(0, max_uid, t.uid.size(), f);
    const std::int64_t rows = max_uid + 1;
    out.train = to_csr(t, 0, rows, cols, f);
    for (std::int64_t u = 0; u < rows; ++u) out.train_user_ids.push_back(name_of(u));
  }
  auto heldout = [&](const char* tr_name, const char* te_name, CsrMatrix& fold_in, CsrMatrix& holdout,
                     std::vector<std::string>& ids) {
    const std::string ftr = at(tr_name), fte = at(te_name);
    UidSid tr = read_uid_sid(ftr), te = read_uid_sid(fte);
    if (tr.uid.empty() && te.uid.empty()) {
      fold_in = CsrMatrix::empty(0, cols);
      holdout = CsrMatrix::empty(0, cols);
      return;
    }
    std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -1;
    for (const UidSid* t : {&tr, &te})
      for (std::int64_t u : t->uid) {
        lo = std::min(lo, u);
        hi = std::max(hi, u);
      }
    check_span(lo, hi, tr.uid.size() + te.uid.size(), ftr + " and " + fte);
    const std::int64_t rows = hi - lo + 1;
    fold_in = to_csr(tr, lo, rows, cols, ftr);
    holdout = to_csr(te, lo, rows, cols, fte);
    for (std::int64_t u = lo; u <= hi; ++u) ids.push_back(name_of(u));
  };
  heldout("validation_tr.csv", "validation_te.csv", out.validation_fold_in, out.validation_holdout,
          out.validation_user_ids);
  heldout("test_tr.csv", "test_te.csv", out.test_fold_in, out.test_holdout, out.test_user_ids);
  out.protocol.source_format = "liang";
  out.protocol.has_threshold = false;
  out.protocol.heldout_users = out.validation_fold_in.rows;
  out.protocol.holdout_fraction = 0.2;
  out.protocol.seed = 0;
  return out;
}

}  // namespace recvae
