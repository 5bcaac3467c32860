// recvae_prep: raw interaction data -> HDF5 split file (strong-generalisation protocol).
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "recvae/util/error.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/data/raw_readers.h"
#include "recvae/data/split_protocol.h"

namespace {

const char* kUsage =
    "usage: recvae_prep --format FORMAT --input PATH --output FILE.h5 [options]\n"
    "       recvae_prep --add-csc FILE.h5\n"
    "\n"
    "Reads raw interactions, applies the strong-generalisation split protocol and writes one HDF5\n"
    "split file (format: data/README.md).\n"
    "\n"
    "  --format F              movielens | netflix | msd | csv | recbole | liang\n"
    "  --input PATH            input file or directory; netflix takes several (repeat, or a,b,c);\n"
    "                          gzip-compressed files are read as they are (NAME.gz found in directories)\n"
    "  --output FILE.h5        output file (written via a temporary file and a rename)\n"
    "  --threshold T           keep interactions with value > T ('none': keep all); the input needs a\n"
    "                          value column (csv: a third column, recbole: rating)\n"
    "  --min-items-per-user N  drop users with fewer items (after the item filter)\n"
    "  --min-users-per-item M  drop items with fewer users (applied first; 0 = none)\n"
    "  --heldout-users N       validation users = test users = N ('auto': 10% of the users)\n"
    "  --holdout-fraction F    share of a held-out user's items used as targets (default 0.2)\n"
    "  --min-items-for-holdout N  held-out users with fewer items keep all as fold-in (default 5)\n"
    "  --seed S                user shuffle and holdout choice (default 98765)\n"
    "  --add-csc FILE.h5       add the item-major copy of train (train_csc, which WMF and PMF need) to a\n"
    "                          file written before recvae_prep wrote it; the file is replaced atomically\n"
    "  --quiet                 no statistics or progress\n"
    "  --help                  this text\n"
    "\n"
    "Protocol defaults per format:\n"
    "  movielens  threshold 3.5, min-items-per-user 5, no item filter, heldout-users 10000\n"
    "  netflix    threshold 3.5, min-items-per-user 5, no item filter, heldout-users 40000\n"
    "  msd        no threshold, min-users-per-item 200 then min-items-per-user 20, heldout-users 50000\n"
    "  csv        no threshold, min-items-per-user 5, no item filter, heldout-users auto (10%);\n"
    "             header line, then user,item[,value], RFC 4180 quoting within a line\n"
    "  recbole    a RecBole atomic .inter file (or a directory holding one): tab-separated, header\n"
    "             user_id:token item_id:token [rating:float] ...; the csv defaults\n"
    "  liang      an already split directory, imported unchanged (protocol options ignored)\n"
    "\n"
    "Exit status: 0 success, 2 bad input (one line on stderr), 1 other failure.\n";

using recvae::InputError;

std::int64_t to_int(const std::string& opt, const std::string& v) {
  std::int64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) throw InputError(opt + ": not an integer: '" + v + "'");
  return x;
}

std::uint64_t to_uint(const std::string& opt, const std::string& v) {
  std::uint64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size())
    throw InputError(opt + ": not a non-negative integer: '" + v + "'");
  return x;
}

double to_double(const std::string& opt, const std::string& v) {
  double x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(x))
    throw InputError(opt + ": not a number: '" + v + "'");
  return x;
}

int run(int argc, char** argv) {
  std::string format, output;
  std::vector<std::string> inputs;
  std::optional<std::string> threshold;
  std::optional<std::int64_t> min_items, min_users, min_items_holdout;
  std::optional<std::string> heldout;
  std::optional<double> fraction;
  std::optional<std::uint64_t> seed;
  bool quiet = false;
  std::string add_csc;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_inline = true;
      }
    }
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--quiet") {
      quiet = true;
      continue;
    }
    auto val = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) throw InputError(a + ": missing value (see --help)");
      return argv[++i];
    };
    if (a == "--add-csc")
      add_csc = val();
    else if (a == "--format")
      format = val();
    else if (a == "--input") {
      for (auto& p : recvae::split_paths(val())) inputs.push_back(p);
    } else if (a == "--output")
      output = val();
    else if (a == "--threshold")
      threshold = val();
    else if (a == "--min-items-per-user")
      min_items = to_int(a, val());
    else if (a == "--min-users-per-item")
      min_users = to_int(a, val());
    else if (a == "--min-items-for-holdout")
      min_items_holdout = to_int(a, val());
    else if (a == "--heldout-users")
      heldout = val();
    else if (a == "--holdout-fraction")
      fraction = to_double(a, val());
    else if (a == "--seed")
      seed = to_uint(a, val());
    else
      throw InputError("unknown option '" + a + "' (see --help)");
  }
  if (!add_csc.empty()) {
    if (!format.empty() || !inputs.empty() || !output.empty())
      throw InputError("--add-csc takes only the split file (see --help)");
    const auto t0 = std::chrono::steady_clock::now();
    recvae::add_item_major_copy(add_csc);
    if (!quiet)
      std::printf("added train_csc to %s in %.2f s\n", add_csc.c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return 0;
  }
  if (format.empty()) throw InputError("--format is required (see --help)");
  if (format != "movielens" && format != "netflix" && format != "msd" && format != "csv" && format != "recbole" &&
      format != "liang")
    throw InputError("unknown format '" + format + "' (expected movielens, netflix, msd, csv, recbole or liang)");
  if (inputs.empty()) throw InputError("--input is required (see --help)");
  if (output.empty()) throw InputError("--output is required (see --help)");
  const bool verbose = !quiet;
  const auto t0 = std::chrono::steady_clock::now();

  recvae::SplitData split;
  if (format == "liang") {
    if (inputs.size() != 1) throw InputError("liang: give one directory as --input");
    split = recvae::read_liang_dir(inputs[0]);
    if (verbose) recvae::print_split_stats(split);
  } else {
    // A RecBole .inter file is a generic interaction list: the csv protocol, under its own name.
    recvae::ProtocolOptions opt = recvae::protocol_defaults(format == "recbole" ? "csv" : format);
    opt.source_format = format;
    if (threshold) {
      if (*threshold == "none")
        opt.has_threshold = false;
      else {
        opt.has_threshold = true;
        opt.threshold = to_double("--threshold", *threshold);
      }
    }
    if (min_items) opt.min_items_per_user = *min_items;
    if (min_users) opt.min_users_per_item = *min_users;
    if (min_items_holdout) opt.min_items_for_holdout = *min_items_holdout;
    if (heldout) {
      if (*heldout == "auto")
        opt.heldout_users = -1;
      else {
        opt.heldout_users = to_int("--heldout-users", *heldout);
        if (opt.heldout_users < 0) throw InputError("--heldout-users must be >= 0");
      }
    }
    if (fraction) opt.holdout_fraction = *fraction;
    if (seed) opt.seed = *seed;
    if (opt.min_items_per_user < 0 || opt.min_users_per_item < 0) throw InputError("filter minimums must be >= 0");
    if (!(opt.holdout_fraction >= 0.0 && opt.holdout_fraction < 1.0))
      throw InputError("--holdout-fraction must be in [0, 1)");
    if (format != "netflix" && inputs.size() != 1) throw InputError(format + ": give one --input");

    recvae::Interactions raw;
    if (format == "movielens")
      raw = recvae::read_movielens(inputs[0], verbose);
    else if (format == "netflix")
      raw = recvae::read_netflix(inputs, verbose);
    else if (format == "msd")
      raw = recvae::read_msd(inputs[0], verbose);
    else if (format == "recbole")
      raw = recvae::read_recbole(inputs[0], verbose);
    else
      raw = recvae::read_csv(inputs[0], verbose);
    // Without values the protocol would skip the filter yet record it in the file as applied.
    if (threshold && opt.has_threshold && raw.value.empty())
      throw InputError(raw.source + ": --threshold " + *threshold + " needs a value column (" +
                       (format == "recbole" ? "rating" : "user,item,value") + "), the input has none");
    split = recvae::apply_protocol(std::move(raw), opt, verbose);
  }
  recvae::write_split_file(output, split);
  if (verbose) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s in %.2f s\n", output.c_str(), s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return recvae::run_guarded("recvae_prep", [&] { return run(argc, argv); });
}
