// recvae_recommend: top-k recommendations from a finished run, on one or many ranks.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "recvae/data/h5_dataset.h"
#include "recvae/data/sharding.h"
#include "recvae/dist/comm.h"
#include "recvae/serve/recommender.h"
#include "recvae/util/error.h"

namespace {

const char* kUsage =
    "usage: recvae_recommend RUN_DIR (--split validation|test | --users HISTORY.csv) --output FILE\n"
    "                        [--k 100] [--data SPLIT.h5] [--batch-size 1000] [--device auto|cpu|cuda]\n"
    "                        [--threads N]\n"
    "       mpirun -np N recvae_recommend ...   (ranks split the users; rank 0 writes)\n"
    "\n"
    "Top-k items for users from RUN_DIR's best model (best_model.pt, written by recvae_dist), every\n"
    "user's own items excluded. Works for every model.type.\n"
    "\n"
    "  --split S      the held-out users of the run's split file (their fold-in rows)\n"
    "  --users F      histories in the raw csv format (header, then user,item[,value] with the\n"
    "                 original ids; RFC 4180 quoting and gzip as recvae_prep reads them). Every row\n"
    "                 counts as an interaction; items the model does not know are counted and\n"
    "                 skipped; users need no training (the model folds their histories in)\n"
    "  --output F     F.csv: columns user,rank,item,score; F.h5: datasets user, rank, item, score\n"
    "  --k K          list length (default 100)\n"
    "  --data F       split file naming the items (default: the run's data.path)\n"
    "  --batch-size B users scored at a time (default 1000)\n"
    "  --device D     auto (a GPU when there is one), cpu or cuda (default auto)\n"
    "  --threads N    host threads per rank (default: the cores / ranks on the node)\n"
    "\n"
    "exit status: 0 success, 2 bad input (run, data, history file, options), 1 runtime failure\n";

bool parse_positive(const std::string& text, long long& out) {
  char* end = nullptr;
  out = std::strtoll(text.c_str(), &end, 10);
  return !text.empty() && *end == '\0' && out > 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string run_dir, split, users, output, data, device = "auto";
  long long k = 100, batch = 1000, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "recvae_recommend: %s needs a value\n", name);
        std::exit(recvae::kExitInputError);
      }
      return argv[++i];
    };
    auto number = [&](const char* name, long long& out) {
      const std::string v = value(name);
      if (!parse_positive(v, out)) {
        std::fprintf(stderr, "recvae_recommend: %s must be a positive integer, not '%s'\n", name, v.c_str());
        std::exit(recvae::kExitInputError);
      }
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--split") {
      split = value("--split");
    } else if (a == "--users") {
      users = value("--users");
    } else if (a == "--output" || a == "-o") {
      output = value("--output");
    } else if (a == "--data") {
      data = value("--data");
    } else if (a == "--device") {
      device = value("--device");
    } else if (a == "--k") {
      number("--k", k);
    } else if (a == "--batch-size") {
      number("--batch-size", batch);
    } else if (a == "--threads") {
      number("--threads", threads);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "recvae_recommend: unknown option '%s'\n%s", a.c_str(), kUsage);
      return recvae::kExitInputError;
    } else if (run_dir.empty()) {
      run_dir = a;
    } else {
      std::fprintf(stderr, "recvae_recommend: more than one run directory given ('%s')\n", a.c_str());
      return recvae::kExitInputError;
    }
  }
  const char* problem = run_dir.empty()                  ? "no RUN_DIR given"
                        : split.empty() == users.empty() ? "give exactly one of --split and --users"
                        : output.empty()                 ? "no --output file given"
                        : (device != "auto" && device != "cpu" && device != "cuda")
                            ? "--device must be auto, cpu or cuda"
                            : nullptr;
  if (problem) {
    std::fprintf(stderr, "recvae_recommend: %s\n%s", problem, kUsage);
    return recvae::kExitInputError;
  }

  return recvae::run_guarded_job("recvae_recommend", [&](std::unique_ptr<recvae::Communicator>& comm) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    comm = recvae::make_mpi_communicator();
    const bool root = comm->rank() == 0;
    recvae::Recommender rec(run_dir, data, device, static_cast<int>(threads));
    recvae::UserHistories h = split.empty() ? recvae::csv_histories(users, rec.item_ids())
                                            : recvae::held_out_histories(recvae::SplitFile(rec.data_path()), split);
    if (root && h.unknown_interactions > 0)
      std::fprintf(stderr,
                   "recvae_recommend: warning: %lld interaction(s) with %lld item id(s) unknown to the model skipped\n",
                   static_cast<long long>(h.unknown_interactions), static_cast<long long>(h.unknown_items));
    // Ranks take contiguous user ranges balanced by history length.
    const recvae::RowRange mine = recvae::balanced_range(h.rows.indptr, comm->rank(), comm->size());
    const recvae::TopK local = rec.recommend(h.rows, mine.lo, mine.hi, static_cast<int>(k), batch);
    const recvae::TopK all = recvae::allgather_top_k(local, *comm);
    if (root) {
      recvae::write_recommendations(output, all, h.user_ids, rec.item_ids());
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "recvae_recommend: %s model, %lld users, top %lld, %d rank(s): %s (%.1f s)\n",
                   rec.model_type().c_str(), static_cast<long long>(h.rows.rows), k, comm->size(), output.c_str(),
                   seconds);
    }
    comm->barrier();
    return 0;
  });
}
