// recvae_dist: trains any registered model data-parallel on one or many ranks (mpirun / srun).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/dist/device_select.h"
#include "recvae/models/registry.h"
#include "recvae/train/stop_signal.h"
#include "recvae/train/trainer.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace {

std::string usage() {
  std::string models;
  for (const auto& t : recvae::model_registry())
    models += "  " + t.name + std::string(10 - std::min<size_t>(9, t.name.size()), ' ') + t.summary + "\n";
  return "usage: recvae_dist CONFIG.yaml [--set section.key=value ...]\n"
         "       mpirun -np N recvae_dist CONFIG.yaml [...]   (or srun)\n"
         "\n"
         "Trains the model that model.type names, data-parallel across MPI ranks, and writes the run\n"
         "directory (output.dir): config.yaml, metrics.jsonl, final.json, best_model.pt, model.h5.\n"
         "Config keys: configs/README.md (or --config-keys).\n"
         "\n"
         "  --set K=V       override one config key, e.g. --set train.epochs=5 (repeatable); V is YAML\n"
         "                  (--set \"ease.lambda=[100, 400]\"); one entry of a mapping: --set "
         "model.implicit_slim.every=5\n"
         "  --resume        continue from output.dir's latest checkpoint (any number of ranks)\n"
         "  --check         check the config and the overrides (keys, types, ranges) and exit: 0 valid, 2 not;\n"
         "                  reads neither the data nor any checkpoint (sweeps check every trial before the first)\n"
         "  --check-sets F  --check once per line of file F, each line a set of overrides K=V separated by tabs\n"
         "                  (after the --set ones); prints 'set N: valid' or 'set N: REASON' per line and exits\n"
         "                  0 when all are valid, 2 when not\n"
         "  --config-keys   print every config key with its default and meaning (Markdown rows) and exit\n"
         "  --help          this text\n"
         "\n"
         "model.type (each has its own config section of the same name):\n" +
         models +
         "\n"
         "SIGTERM / SIGUSR1: finish the current step, write a checkpoint, exit with status 3 (requeue).\n"
         "exit status: 0 success, 2 bad input (config, data, checkpoint), 1 runtime failure,\n"
         "             3 checkpointed on a signal\n";
}

// --check-sets: every line of `sets_path` is one set of tab-separated overrides, after `common`.
int check_sets(const std::string& config_path, const std::vector<std::string>& common, const std::string& sets_path) {
  std::ifstream in(sets_path);
  if (!in) throw recvae::InputError(sets_path + ": cannot read the override sets (--check-sets)");
  std::vector<std::vector<std::string>> sets;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> set = common;
    std::stringstream fields(line);
    for (std::string kv; std::getline(fields, kv, '\t');)
      if (!kv.empty()) set.push_back(kv);
    sets.push_back(std::move(set));
  }
  const std::vector<std::string> reasons = recvae::check_override_sets(config_path, sets);
  int refused = 0;
  for (size_t i = 0; i < reasons.size(); ++i) {
    std::printf("set %zu: %s\n", i + 1, reasons[i].empty() ? "valid" : reasons[i].c_str());
    refused += !reasons[i].empty();
  }
  return refused ? recvae::kExitInputError : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> overrides;
  bool resume = false;
  bool check_only = false;
  std::string check_sets_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      return 0;
    } else if (a == "--config-keys") {
      for (const auto& row : recvae::config_key_rows(recvae::config_section_types())) std::printf("%s\n", row.c_str());
      return 0;
    } else if (a == "--check") {
      check_only = true;
    } else if (a == "--check-sets" && i + 1 < argc) {
      check_sets_path = argv[++i];
    } else if (a == "--resume") {
      resume = true;
    } else if (a == "--set" && i + 1 < argc) {
      overrides.push_back(argv[++i]);
    } else if (a.rfind("--set=", 0) == 0) {
      overrides.push_back(a.substr(6));
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "recvae_dist: unknown option '%s'\n%s", a.c_str(), usage().c_str());
      return recvae::kExitInputError;
    } else if (config_path.empty()) {
      config_path = a;
    } else {
      std::fprintf(stderr, "recvae_dist: more than one config file given ('%s')\n", a.c_str());
      return recvae::kExitInputError;
    }
  }
  if (config_path.empty()) {
    std::fputs(usage().c_str(), stderr);
    return recvae::kExitInputError;
  }

  if (!check_sets_path.empty())
    return recvae::run_guarded("recvae_dist", [&] { return check_sets(config_path, overrides, check_sets_path); });
  if (check_only)
    return recvae::run_guarded("recvae_dist", [&] {
      recvae::Config config = recvae::load_config(config_path, overrides);
      recvae::apply_model_defaults(config);
      std::printf("recvae_dist: %s: config valid (model.type %s)\n", config_path.c_str(), config.model.type.c_str());
      return 0;
    });
  recvae::configure_host_allocator();
  return recvae::run_guarded_job("recvae_dist", [&](std::unique_ptr<recvae::Communicator>& comm) {
    const recvae::Config config = recvae::load_config(config_path, overrides);
    comm = recvae::make_communicator(config);
    recvae::install_stop_signal_handlers();
    recvae::Trainer trainer(config, *comm);
    return trainer.run(resume).stopped_on_signal ? recvae::kExitCheckpointedOnSignal : 0;
  });
}
