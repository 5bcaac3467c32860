// recvae_synth: synthetic interaction data, as a ready HDF5 split (.h5) or a raw CSV (.csv).
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include "recvae/util/error.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/data/split_protocol.h"
#include "recvae/data/synth.h"

namespace {

const char* kUsage =
    "usage: recvae_synth --preset PRESET --output FILE(.h5|.csv) [options]\n"
    "\n"
    "Generates implicit feedback with log-normal user activity, Zipf item popularity and planted\n"
    "taste groups. FILE.h5: a ready split (same protocol as recvae_prep: min 5 items per user,\n"
    "holdout fraction 0.2); FILE.csv: raw interactions with header user,item (recvae_prep --format csv).\n"
    "\n"
    "  --preset P          tiny (3,000 users x 1,000 items, 300+300 held out), ml-20m, netflix, msd\n"
    "  --output FILE       .h5 or .csv (decided by the extension)\n"
    "  --seed S            random seed (default 1); the output is a function of the options\n"
    "  --users N           total users (held-out users included)\n"
    "  --items N           items\n"
    "  --mean-items M      mean interactions per user\n"
    "  --density D         fraction of the user x item matrix (mean-items = D * items)\n"
    "  --heldout-users N   validation users = test users = N (.h5 only)\n"
    "  --groups K          latent taste groups (default 20; tiny 10)\n"
    "  --quiet             no statistics or progress\n"
    "  --help              this text\n"
    "\n"
    "Exit status: 0 success, 2 bad input (one line on stderr), 1 other failure.\n";

using recvae::InputError;

std::int64_t to_int(const std::string& opt, const std::string& v) {
  std::int64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) throw InputError(opt + ": not an integer: '" + v + "'");
  return x;
}

double to_double(const std::string& opt, const std::string& v) {
  double x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(x))
    throw InputError(opt + ": not a number: '" + v + "'");
  return x;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int run(int argc, char** argv) {
  std::string preset, output;
  std::optional<std::int64_t> users, items, heldout, groups;
  std::optional<double> mean, density;
  std::optional<std::uint64_t> seed;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline = true;
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
    if (a == "--preset")
      preset = val();
    else if (a == "--output")
      output = val();
    else if (a == "--seed") {
      std::int64_t s = to_int(a, val());
      if (s < 0) throw InputError("--seed must be >= 0");
      seed = static_cast<std::uint64_t>(s);
    } else if (a == "--users")
      users = to_int(a, val());
    else if (a == "--items")
      items = to_int(a, val());
    else if (a == "--heldout-users")
      heldout = to_int(a, val());
    else if (a == "--groups")
      groups = to_int(a, val());
    else if (a == "--mean-items")
      mean = to_double(a, val());
    else if (a == "--density")
      density = to_double(a, val());
    else
      throw InputError("unknown option '" + a + "' (see --help)");
  }
  if (preset.empty()) throw InputError("--preset is required (see --help)");
  if (output.empty()) throw InputError("--output is required (see --help)");
  const bool h5 = ends_with(output, ".h5") || ends_with(output, ".hdf5");
  if (!h5 && !ends_with(output, ".csv")) throw InputError(output + ": output must end in .h5 or .csv");
  recvae::SynthOptions o = recvae::synth_preset(preset);
  if (seed) o.seed = *seed;
  if (users) o.users = *users;
  if (items) o.items = *items;
  if (groups) o.groups = static_cast<int>(*groups);
  if (heldout) o.heldout_users = *heldout;
  if (mean && density) throw InputError("give --mean-items or --density, not both");
  if (mean) o.mean_items = *mean;
  if (density) o.mean_items = *density * static_cast<double>(o.items);
  if (o.users < 1 || o.items < 1) throw InputError("--users and --items must be >= 1");
  if (o.groups < 1 || o.groups > 100000) throw InputError("--groups must be in [1, 100000]");
  if (!(o.mean_items > 0)) throw InputError("--mean-items / --density must be positive");
  if (o.heldout_users < 0) throw InputError("--heldout-users must be >= 0");

  const bool verbose = !quiet;
  const auto t0 = std::chrono::steady_clock::now();
  recvae::Interactions data = recvae::generate_synthetic(o, verbose);
  if (verbose)
    std::printf("generated %lld interactions, %lld users, %lld items (mean %.1f per user)\n",
                static_cast<long long>(data.size()), static_cast<long long>(data.num_users()),
                static_cast<long long>(data.num_items()),
                static_cast<double>(data.size()) / static_cast<double>(data.num_users()));
  if (h5) {
    recvae::SplitData split = recvae::apply_protocol(std::move(data), recvae::synth_protocol(o), verbose);
    split.protocol.source_format = "synthetic:" + o.preset;
    recvae::write_split_file(output, split);
  } else {
    recvae::write_interactions_csv(output, data);
  }
  if (verbose) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s in %.2f s\n", output.c_str(), s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return recvae::run_guarded("recvae_synth", [&] { return run(argc, argv); });
}
