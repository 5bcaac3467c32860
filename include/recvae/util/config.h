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

/// `model:` which model the run trains.
/// `model.implicit_slim:` ImplicitSLIM (Shenbin and Nikolenko 2023) for RecVAE's item embeddings.
struct ImplicitSLIMConfig {
  int every = 0;             ///< replace the embeddings before every `every`-th epoch; 0: off
  double lambda = 500.0;     ///< L2 weight of the implicit SLIM
  double alpha = 1.0;        ///< weight of the embedding-space term
  double threshold = 1000.0; ///< items with fewer interactions are left out of the projection
};

struct ModelConfig {
  std::string type = "recvae";  ///< recvae | multvae | multdae | cdae | autorec | ract | ease | slim | wmf | pmf (models/model.h)
  ImplicitSLIMConfig implicit_slim;  ///< RecVAE only
};

/// `recvae:` RecVAE's architecture and schedule (spec defaults).
struct RecVAEConfig {
  std::int64_t hidden_dim = 600;                         ///< encoder width H
  std::int64_t latent_dim = 200;                         ///< latent width D
  double layernorm_eps = 0.1;                            ///< LayerNorm eps (reference code: 0.1)
  std::array<double, 3> prior_weights{0.15, 0.75, 0.1};  ///< N(0,1), encoder_old posterior, wide N
  double prior_wide_logvar = 10.0;                       ///< log-variance of the wide component
  double gamma = 0.005;            ///< per-user KL weight gamma*|x_u|; 0 selects the constant beta
  double beta = 0.2;               ///< constant KL weight, used only when gamma == 0
  int encoder_passes = 3;          ///< encoder passes per epoch (alternating mode)
  int decoder_passes = 1;          ///< decoder passes per epoch (alternating mode)
  bool alternating = true;         ///< false: one pass per epoch stepping both optimisers
};

/// `multvae:` Mult-VAE (Liang et al. 2018), the notebook's defaults.
struct MultVAEConfig {
  std::int64_t hidden_dim = 600;     ///< encoder and decoder hidden width
  std::int64_t latent_dim = 200;     ///< latent width
  double beta_cap = 0.2;             ///< KL weight ceiling (anneal_cap)
  std::int64_t anneal_steps = 200000;  ///< global optimiser steps to reach beta 1 (total_anneal_steps); 0: beta_cap throughout
  double l2 = 0.0;                   ///< weight penalty l2 * sum |W|^2 per step (the notebook's lam, 0 for the VAE)
};

/// `multdae:` Mult-DAE (Liang et al. 2018).
struct MultDAEConfig {
  std::int64_t latent_dim = 200;  ///< hidden width
  double l2 = 0.01 / 500;         ///< weight penalty l2 * sum |W|^2 per step (the notebook's lam = 0.01 / batch)
};

/// `cdae:` CDAE (Wu et al. 2016).
struct CDAEConfig {
  std::int64_t hidden_dim = 200;  ///< hidden width K
  double l2 = 1e-5;               ///< weight penalty l2/2 * |W|^2 per step and l2/2 * |V_u|^2 per user
  int foldin_steps = 20;          ///< held-out users: Adam steps fitting V_u on the fold-in, network frozen
  double foldin_lr = 0.05;        ///< learning rate of those steps
};

/// `autorec:` user-based AutoRec (Sedhain et al. 2015) for implicit feedback.
struct AutoRecConfig {
  std::int64_t hidden_dim = 500;  ///< hidden width
  double l2 = 1.0;                ///< lambda: the objective's lambda/2 (|W|^2 + |V|^2), spread over the users' batches
};

/// `ract:` RaCT fine-tuning (Lobel et al. 2020, samlobel/RaCT_CF) of a Mult-VAE or RecVAE actor.
struct RaCTConfig {
  std::string actor = "multvae";  ///< multvae | recvae; its own section (multvae: / recvae:) shapes it
  std::string actor_run;          ///< run directory whose best_model.pt is the starting actor ("": pre-train here)
  int actor_epochs = 0;           ///< maximum-likelihood epochs of the actor in this run (with no actor_run)
  int critic_epochs = 50;         ///< critic pre-training epochs, actor fixed (the authors' n_epochs_ac_only)
  int ac_epochs = 50;             ///< actor-critic epochs (n_epochs_pred_and_ac)
  double critic_lr = 1e-4;        ///< Adam learning rate of the critic (lr_critic)
  double actor_lr = 2e-6;         ///< Adam learning rate of the actor in the actor-critic epochs (lr_ac)
  double critic_l2 = 1e-4;        ///< critic penalty critic_l2 * |theta|^2 / train.batch_size per step
};

/// `ease:` EASE (Steck 2019), fitted in closed form from the distributed Gram matrix.
struct EASEConfig {
  std::vector<double> lambda{500.0};  ///< L2 weights to fit; the best on validation NDCG@100 is kept
  double memory_limit_gb = 0;         ///< refuse a fit needing more host memory per rank; 0: 80% of the node's
  std::string precision = "float64";  ///< float64 | float32: the Gram matrix, its inverse and B
};

/// `slim:` SLIM (Ning and Karypis 2011), solved column by column on the distributed Gram matrix.
struct SLIMConfig {
  std::vector<double> l1{1.0};   ///< L1 weights of every column's regression (a grid with l2)
  std::vector<double> l2{10.0};  ///< L2 weights; every (l1, l2) pair is fitted from one G, the best on validation kept
  int max_sweeps = 100;       ///< coordinate-descent sweeps per column at most
  double tolerance = 1e-4;    ///< a column is done when no weight moves by more in a sweep
  double memory_limit_gb = 0; ///< refuse a fit whose Gram matrix needs more per rank; 0: 80% of the node's, shared by its ranks
  std::string precision = "float32";  ///< float32 | float64: the Gram matrix (float32: exact counts below 2^24)
};

/// `wmf:` implicit ALS (Hu, Koren and Volinsky 2008) in Rendle et al.'s (2022) formulation.
struct WMFConfig {
  std::int64_t dim = 256;          ///< embedding width k
  double regularization = 0.003;   ///< lambda
  double regularization_exp = 1.0; ///< nu: lambda (n + alpha_0 * N)^nu per row
  double unobserved_weight = 0.1;  ///< alpha_0: the weight of every (user, item) pair's squared score
  double alpha = 0.0;              ///< confidence of an observed value x: 1 + alpha * x (count data)
  double init_stddev = 0.1;        ///< factors start as N(0, init_stddev^2 / dim)
};

/// `pmf:` PMF (Salakhutdinov and Mnih 2008) on binarised data: every entry observed with equal
/// weight, zeros included (the alpha_0 = 1, nu = 0 member of the WMF solver).
struct PMFConfig {
  std::int64_t dim = 256;          ///< embedding width k
  double regularization = 1.0;     ///< lambda (the Gaussian priors' precision ratio)
  double init_stddev = 0.1;        ///< factors start as N(0, init_stddev^2 / dim)
};

/// `train:` optimisation schedule shared by every model.
struct TrainConfig {
  int epochs = -1;                 ///< epochs; unset (-1): 50, for ract the sum of its phases
  std::int64_t batch_size = 500;   ///< global batch size (users), whatever the number of ranks
  double lr = -1;                  ///< Adam learning rate; unset (-1): the model's default (apply_model_defaults)
  double dropout = -1;             ///< input dropout of training (RecVAE: encoder) passes; unset (-1): the model's default
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
  RecVAEConfig recvae;
  MultVAEConfig multvae;
  MultDAEConfig multdae;
  CDAEConfig cdae;
  AutoRecConfig autorec;
  RaCTConfig ract;
  EASEConfig ease;
  SLIMConfig slim;
  WMFConfig wmf;
  PMFConfig pmf;
  TrainConfig train;
  EvalConfig eval;
  OutputConfig output;
  DistConfig dist;

  /// The resolved configuration as YAML (every key, written to the run directory).
  std::string to_yaml() const;
};

/// The model types `model.type` accepts, in the order of the docs.
const std::vector<std::string>& model_types();

/// Fills the shared keys left unset (train.lr, train.dropout, train.epochs: -1) with model.type's
/// defaults (ract: its actor's lr and dropout, and the sum of its phases' epochs).
/// parse_config does it; code that builds a Config by hand gets it from the Trainer.
void apply_model_defaults(Config& config);

/// Parses YAML text (source names it in messages) and applies `section.key=value` overrides.
/// Throws InputError naming the key on unknown keys, wrong types and out-of-range values.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
/// Reads and parses a config file; InputError when it is missing or unreadable.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace recvae
