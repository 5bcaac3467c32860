#pragma once
// Run configuration: YAML loading, `--set section.key=value` overrides, validation with messages
// that name the key. Every key and its default is documented in configs/README.md.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace recvae {

/// `data:` where the split file is.
struct DataConfig {
  std::string path;  ///< split file written by recvae_prep / recvae_synth (relative to the CWD)
};

/// `model:` RecVAE architecture (spec defaults).
struct ModelConfig {
  std::int64_t hidden_dim = 600;                       ///< encoder width H
  std::int64_t latent_dim = 200;                       ///< latent width D
  double layernorm_eps = 0.1;                          ///< LayerNorm eps (reference code: 0.1)
  std::array<double, 3> prior_weights{0.15, 0.75, 0.1};  ///< N(0,1), encoder_old posterior, wide N
  double prior_wide_logvar = 10.0;                     ///< log-variance of the wide component
};

/// `train:` optimisation schedule.
struct TrainConfig {
  int epochs = 50;                 ///< RecVAE epochs
  std::int64_t batch_size = 500;   ///< global batch size (users), whatever the number of ranks
  double lr = 5e-4;                ///< Adam learning rate, both optimisers
  double gamma = 0.005;            ///< per-user KL weight gamma*|x_u|; 0 selects the constant beta
  double beta = 0.2;               ///< constant KL weight, used only when gamma == 0
  int encoder_passes = 3;          ///< encoder passes per epoch (alternating mode)
  int decoder_passes = 1;          ///< decoder passes per epoch (alternating mode)
  bool alternating = true;         ///< false: one pass per epoch stepping both optimisers
  double dropout = 0.5;            ///< input dropout in encoder passes
  std::uint64_t seed = 1337;       ///< seed of initialisation, permutations and noise
  int threads = 0;                 ///< intra-op threads per rank; 0 = libtorch default
  std::int64_t max_steps_per_pass = 0;  ///< >0 truncates every pass (benchmarks, smoke tests)
  std::string precision = "fp32";  ///< fp32 | tf32 (CUDA matmuls in TF32; no effect on CPU)
};

/// `eval:` validation/test evaluation.
struct EvalConfig {
  std::int64_t batch_size = 1000;   ///< users scored at once
  bool popularity_baseline = true;  ///< also evaluate the popularity ranking
  bool test = true;                 ///< evaluate the best model on the test users at the end
};

/// `output:` run directory and logging.
struct OutputConfig {
  std::string dir = "runs/default";  ///< run directory (created)
  bool save_model = true;            ///< write the best model's parameters
  double progress_seconds = 10.0;    ///< minimum seconds between progress lines within a pass
  int checkpoint_every = 1;          ///< write a checkpoint every this many epochs (0: only at the end)
  int checkpoint_keep = 2;           ///< checkpoints kept in output.dir/checkpoints
  bool auto_resume = false;          ///< resume from output.dir's checkpoint when there is one
};

/// `dist:` multi-rank settings.
struct DistConfig {
  std::string backend = "auto";  ///< auto | nccl | mpi
  std::string device = "auto";   ///< auto | cpu | cuda
  bool allow_cpu = false;        ///< device auto: a rank without a GPU of its own on a GPU node runs on the CPU
  double timeout_seconds = 600;  ///< NCCL collective deadline
  std::string device_data = "auto";  ///< auto | on | off: shards and batch assembly on the device (auto: on GPUs)
};

/// The whole configuration.
struct Config {
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  EvalConfig eval;
  OutputConfig output;
  DistConfig dist;

  /// The resolved configuration as YAML (every key, written to the run directory).
  std::string to_yaml() const;
};

/// Parses YAML text (source names it in messages) and applies `section.key=value` overrides.
/// Throws InputError naming the key on unknown keys, wrong types and out-of-range values.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
/// Reads and parses a config file; InputError when it is missing or unreadable.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace recvae
