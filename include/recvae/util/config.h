#pragma once
// Run configuration: the sections every run has (data, model, train, eval, output, dist), a
// store of per-model sections that each model declares next to its code, the key table that
// reads, validates, writes and documents every key, and the parser (Note [Config sections] in
// config.cpp). Model types and their sections are supplied by the registry (models/registry.h),
// which sits above this file: util knows no model.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace recvae {

struct Config;

/// `data:` where the split file is.
struct DataConfig {
  std::string path;  ///< split file written by recvae_prep / recvae_synth (relative to the CWD)
};

/// `model.implicit_slim:` ImplicitSLIM (Shenbin and Nikolenko 2023) for RecVAE's item embeddings.
struct ImplicitSLIMConfig {
  int every = 0;              ///< replace the embeddings before every `every`-th epoch; 0: off
  double lambda = 500.0;      ///< L2 weight of the implicit SLIM
  double alpha = 1.0;         ///< weight of the embedding-space term
  double threshold = 1000.0;  ///< items with fewer interactions are left out of the projection
};

/// `model:` which model the run trains.
struct ModelConfig {
  std::string type = "recvae";       ///< a registered model type (models/registry.h)
  ImplicitSLIMConfig implicit_slim;  ///< RecVAE only
};

/// `train:` optimisation schedule shared by every model.
struct TrainConfig {
  int epochs = -1;                ///< epochs; unset (-1): the model's default (TrainDefaults)
  std::int64_t batch_size = 500;  ///< global batch size (users), whatever the number of ranks
  double lr = -1;                 ///< Adam learning rate; unset (-1): the model's default
  double dropout = -1;        ///< input dropout of training (RecVAE: encoder) passes; unset (-1): the model's default
  std::uint64_t seed = 1337;  ///< seed of initialisation, permutations and noise
  int threads = 0;            ///< intra-op threads per rank; 0 = libtorch default
  std::int64_t max_steps_per_pass = 0;  ///< >0 truncates every pass (benchmarks, smoke tests)
  int patience = 0;                     ///< stop after this many epochs without a better validation NDCG@100 (0: never)
  std::string precision = "fp32";       ///< fp32 | tf32 (CUDA matmuls in TF32; no effect on CPU)
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
  std::string backend = "auto";       ///< auto | nccl | mpi
  std::string device = "auto";        ///< auto | cpu | cuda
  bool allow_cpu = false;             ///< device auto: a rank without a GPU of its own on a GPU node runs on the CPU
  double timeout_seconds = 600;       ///< NCCL collective deadline
  std::string device_data = "auto";   ///< auto | on | off: shards and batch assembly on the device (auto: on GPUs)
  std::string optimizer = "sharded";  ///< sharded | replicated: Adam on 1/N of each group per rank, or all of it
  std::string grad_dtype = "fp32";    ///< fp32 | bf16: gradients on the wire
  double bucket_mb = 0;  ///< > 0: gradients cross the wire in buckets of this many MiB, overlapped with backward
};

/// Declares the keys of one section: how each is read (with its range or choices), written
/// back, and documented. Sections call it from ConfigSection::declare; the same declaration
/// serves the parser, config.yaml and the key table of configs/README.md.
class KeyTable {
 public:
  /// One declared key.
  struct Key {
    std::string name;          ///< "section.key"
    std::string meaning;       ///< one-line documentation (configs/README.md's third column)
    std::string default_text;  ///< the default as documented ("" : the value written back)
    std::function<void(const YAML::Node&, const std::string& key)> read;  ///< validates and stores
    std::function<YAML::Node()> write;                                    ///< the current value
  };

  /// `section`: the prefix of every key declared through this table; `source` names the config
  /// in error messages.
  KeyTable(std::string section, std::string source);
  ~KeyTable();
  KeyTable(const KeyTable&) = delete;  // the readers refer to the table
  KeyTable& operator=(const KeyTable&) = delete;

  /// An integer or floating-point key within [lo, hi] (open ends when asked).
  template <class T>
  KeyTable& num(const std::string& key, T& target, double lo, double hi, const std::string& meaning,
                bool open_lo = false, bool open_hi = false);
  /// true / false.
  KeyTable& flag(const std::string& key, bool& target, const std::string& meaning);
  /// A string; when `choices` is not empty, one of them.
  KeyTable& text(const std::string& key, std::string& target, std::vector<std::string> choices,
                 const std::string& meaning);
  /// A number or a non-empty list of numbers, each finite and > 0 (`positive`) or >= 0 (the
  /// grids of the closed-form models); `noun` names one element in messages.
  KeyTable& numbers(const std::string& key, std::vector<double>& target, const std::string& noun, bool positive,
                    const std::string& meaning);
  /// A key with its own reader and writer (mappings, fixed-length lists).
  KeyTable& custom(const std::string& key, std::function<void(const YAML::Node&, const std::string&)> read,
                   std::function<YAML::Node()> write, const std::string& meaning);
  /// Documents the last declared key's default as `text` instead of its value ("model's").
  KeyTable& shown_default(const std::string& text);

  /// Throws InputError "<source>: config key '<key>': <what>".
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  /// The declared keys, in declaration order.
  const std::vector<Key>& keys() const { return keys_; }
  /// The section prefix.
  const std::string& section() const { return section_; }
  /// The config's name in messages.
  const std::string& source() const { return source_; }

 private:
  void add(const std::string& key, std::function<void(const YAML::Node&, const std::string&)> read,
           std::function<YAML::Node()> write, const std::string& meaning);
  template <class T>
  T scalar(const YAML::Node& n, const std::string& key, const char* type_name) const;

  std::string section_, source_;
  std::vector<Key> keys_;
};

/// Defaults of the shared train keys that a model chooses (train.lr, train.dropout, train.epochs).
struct TrainDefaults {
  double lr = 1e-3;      ///< Adam learning rate
  double dropout = 0.5;  ///< input dropout of training passes
  int epochs = 50;       ///< epochs
};

/// A model's own config section (`ease:`, `recvae:` ...), declared next to the model's code.
/// A section type S derives from Section<S> and names itself with `static constexpr const char*
/// kName`; Config::section<S>() reaches it.
class ConfigSection {
 public:
  virtual ~ConfigSection() = default;
  /// Declares every key of the section with its range and one-line documentation.
  virtual void declare(KeyTable& keys) = 0;
  /// A deep copy.
  virtual std::unique_ptr<ConfigSection> clone() const = 0;
  /// Checks that need other sections (after parsing; before the model's train defaults are
  /// filled in). Throws InputError prefixed by `source`.
  virtual void validate(const Config& config, const std::string& source) const {}
  /// The train.* defaults of a run of this model.
  virtual TrainDefaults train_defaults(const Config& config) const { return {}; }
  /// Other model sections a run of this model reads (RaCT: its actor's).
  virtual std::vector<std::string> also_uses(const Config& config) const { return {}; }
  /// Fills other sections from a finished run this section names (RaCT: its actor's section from
  /// ract.actor_run's config.yaml); adopt_sections calls it. Returns what it changed, for rank 0 to
  /// print; throws InputError when the run's config is unreadable.
  virtual std::vector<std::string> adopt(Config& config) { return {}; }
};

/// CRTP helper: the copy for ConfigSection::clone.
template <class S>
class Section : public ConfigSection {
 public:
  std::unique_ptr<ConfigSection> clone() const override { return std::make_unique<S>(static_cast<const S&>(*this)); }
};

/// The model sections of a config, by name; copying a Config copies them.
class SectionStore {
 public:
  SectionStore() = default;
  SectionStore(const SectionStore& other);
  SectionStore& operator=(const SectionStore& other);
  SectionStore(SectionStore&&) = default;
  SectionStore& operator=(SectionStore&&) = default;
  /// The section named `name`, or nullptr.
  ConfigSection* find(const std::string& name) const;
  /// Puts `section` under `name` (replacing one there).
  ConfigSection& put(const std::string& name, std::unique_ptr<ConfigSection> section);
  /// Names of the sections held.
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::unique_ptr<ConfigSection>> sections_;
};

/// What the parser knows of one model type (the registry hands these over).
struct SectionType {
  std::string name;                                      ///< model.type value and section name
  std::function<std::unique_ptr<ConfigSection>()> make;  ///< a section with its defaults
};

/// The whole configuration.
struct Config {
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  EvalConfig eval;
  OutputConfig output;
  DistConfig dist;
  SectionStore sections;           ///< the model sections (the run's own, RaCT's actor's, any set in code)
  std::vector<std::string> notes;  ///< what adopt_sections took from finished runs, for rank 0 to print

  /// The model section S (S::kName), created with its defaults when absent.
  template <class S>
  S& section() {
    ConfigSection* s = sections.find(S::kName);
    if (!s) s = &sections.put(S::kName, std::make_unique<S>());
    return static_cast<S&>(*s);
  }
  /// The model section S, or S's defaults when the config has none.
  template <class S>
  const S& section() const {
    static const S defaults;
    const ConfigSection* s = sections.find(S::kName);
    return s ? static_cast<const S&>(*s) : defaults;
  }
  /// Names of the model sections the run reads: model.type's and what it also_uses.
  std::vector<std::string> used_sections() const;
  /// The resolved configuration as YAML (every key of the common sections and of the used
  /// model sections; written to the run directory).
  std::string to_yaml() const;
};

/// Parses YAML text (`source` names it in messages), applies `section.key=value` overrides
/// and validates: unknown keys, wrong types, out-of-range values and sections of another model
/// are InputErrors naming the key. `types` are the model types and their sections (the
/// registry's); the run's section is filled in with its defaults, and the model's train
/// defaults are applied (fill_train_defaults). Callers use models/registry.h's parse_config.
Config read_config(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides,
                   const std::vector<SectionType>& types);

/// Makes sure the sections model.type uses exist (created by `types`), then fills the shared
/// train keys left unset (-1) with the model's TrainDefaults. Idempotent.
void fill_train_defaults(Config& config, const std::vector<SectionType>& types);

/// Lets each section the run uses fill others from the finished runs it names
/// (ConfigSection::adopt), appending what changed to config.notes. Training and --check do it
/// (apply_model_defaults); recvae_recommend, whose run's config.yaml already holds the result, does not.
void adopt_sections(Config& config);

/// The key table of the common sections followed by each model type's section, as Markdown
/// rows "| `key` | default | meaning |" in declaration order (configs/README.md's tables).
std::vector<std::string> config_key_rows(const std::vector<SectionType>& types);

}  // namespace recvae
