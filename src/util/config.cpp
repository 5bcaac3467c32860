#include "recvae/util/config.h"
#include "recvae/util/config_text.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "recvae/util/error.h"

namespace recvae {

// Note [Config sections]
// ~~~~~~~~~~~~~~~~~~~~~~
// A key is declared once, through a KeyTable: its name, its range or choices, its one-line
// documentation, and the struct member that holds it (whose initialiser is the default). The
// parser reads through the declaration, config.yaml is written from it, and configs/README.md's
// key tables are printed from it (`recvae_dist --config-keys`; a test compares the two). The
// sections every run has are declared here; each model declares its own section next to its
// code (a ConfigSection) and the registry (models/registry.cpp) hands the section types to the
// parser, so util knows no model and adding one touches no file here. A model section may also
// check keys of other sections (validate), choose the train.* defaults of its runs, and name
// other sections its runs read (RaCT: its actor's).

// ---- KeyTable ------------------------------------------------------------------------------

KeyTable::KeyTable(std::string section, std::string source)
    : section_(std::move(section)), source_(std::move(source)) {}
KeyTable::~KeyTable() = default;

void KeyTable::fail(const std::string& key, const std::string& what) const {
  throw InputError(source_ + ": config key '" + key + "': " + what);
}

void KeyTable::add(const std::string& key, std::function<void(const YAML::Node&, const std::string&)> read,
                   std::function<YAML::Node()> write, const std::string& meaning) {
  keys_.push_back({section_ + "." + key, meaning, "", std::move(read), std::move(write)});
}

KeyTable& KeyTable::shown_default(const std::string& text) {
  keys_.back().default_text = text;
  return *this;
}

template <class T>
T KeyTable::scalar(const YAML::Node& n, const std::string& key, const char* type_name) const {
  if (!n.IsScalar()) fail(key, std::string("expected ") + type_name);
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(key, std::string("expected ") + type_name + ", got '" + n.Scalar() + "'");
  }
}

template <class T>
KeyTable& KeyTable::num(const std::string& key, T& target, double lo, double hi, const std::string& meaning,
                        bool open_lo, bool open_hi) {
  add(
      key,
      [this, &target, lo, hi, open_lo, open_hi](const YAML::Node& n, const std::string& k) {
        const T v = scalar<T>(n, k, std::is_integral_v<T> ? "an integer" : "a number");
        const long double x = static_cast<long double>(v);
        bool ok = (open_lo ? x > lo : x >= lo) && (open_hi ? x < hi : x <= static_cast<long double>(hi));
        if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(v);
        if (!ok) {
          std::ostringstream msg;
          msg << "value " << v << " out of range " << (open_lo ? "(" : "[");
          if constexpr (std::is_integral_v<T>)
            msg << static_cast<T>(lo) << ", "
                << (hi >= static_cast<double>(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::max()
                                                                             : static_cast<T>(hi));
          else
            msg << lo << ", " << hi;
          msg << (open_hi ? ")" : "]");
          fail(k, msg.str());
        }
        target = v;
      },
      [&target] { return YAML::Node(target); }, meaning);
  return *this;
}

template KeyTable& KeyTable::num<int>(const std::string&, int&, double, double, const std::string&, bool, bool);
template KeyTable& KeyTable::num<std::int64_t>(const std::string&, std::int64_t&, double, double, const std::string&,
                                               bool, bool);
template KeyTable& KeyTable::num<std::uint64_t>(const std::string&, std::uint64_t&, double, double, const std::string&,
                                                bool, bool);
template KeyTable& KeyTable::num<double>(const std::string&, double&, double, double, const std::string&, bool, bool);

KeyTable& KeyTable::flag(const std::string& key, bool& target, const std::string& meaning) {
  add(
      key, [this, &target](const YAML::Node& n, const std::string& k) { target = scalar<bool>(n, k, "true or false"); },
      [&target] { return YAML::Node(target); }, meaning);
  return *this;
}

KeyTable& KeyTable::text(const std::string& key, std::string& target, std::vector<std::string> choices,
                         const std::string& meaning) {
  add(
      key,
      [this, &target, choices](const YAML::Node& n, const std::string& k) {
        std::string v = scalar<std::string>(n, k, "a string");
        if (!choices.empty()) {
          bool ok = false;
          std::string list;
          for (const auto& c : choices) {
            ok = ok || c == v;
            list += (list.empty() ? "" : "|") + c;
          }
          if (!ok) fail(k, "'" + v + "' is not one of " + list);
        }
        target = v;
      },
      [&target] { return YAML::Node(target); }, meaning);
  return *this;
}

KeyTable& KeyTable::numbers(const std::string& key, std::vector<double>& target, const std::string& noun, bool positive,
                            const std::string& meaning) {
  add(
      key,
      [this, &target, noun, positive](const YAML::Node& n, const std::string& k) {
        target.clear();
        auto put = [&](const YAML::Node& v) {
          const double x = scalar<double>(v, k, "a number or a list of numbers");
          if (!std::isfinite(x) || (positive ? !(x > 0) : !(x >= 0)))
            fail(k, "every " + noun + " must be a finite number " + (positive ? "> 0" : ">= 0"));
          target.push_back(x);
        };
        if (n.IsSequence()) {
          for (const auto& v : n) put(v);
        } else {
          put(n);
        }
        if (target.empty()) fail(k, "expected at least one " + noun);
      },
      [&target] {
        YAML::Node n(YAML::NodeType::Sequence);
        for (double x : target) n.push_back(x);
        n.SetStyle(YAML::EmitterStyle::Flow);
        return n;
      },
      meaning);
  return *this;
}

KeyTable& KeyTable::custom(const std::string& key, std::function<void(const YAML::Node&, const std::string&)> read,
                           std::function<YAML::Node()> write, const std::string& meaning) {
  add(key, std::move(read), std::move(write), meaning);
  return *this;
}

// ---- SectionStore --------------------------------------------------------------------------

SectionStore::SectionStore(const SectionStore& other) { *this = other; }

SectionStore& SectionStore::operator=(const SectionStore& other) {
  if (this == &other) return *this;
  sections_.clear();
  for (const auto& [name, s] : other.sections_) sections_[name] = s->clone();
  return *this;
}

ConfigSection* SectionStore::find(const std::string& name) const {
  auto it = sections_.find(name);
  return it == sections_.end() ? nullptr : it->second.get();
}

ConfigSection& SectionStore::put(const std::string& name, std::unique_ptr<ConfigSection> section) {
  auto& slot = sections_[name];
  slot = std::move(section);
  return *slot;
}

std::vector<std::string> SectionStore::names() const {
  std::vector<std::string> out;
  for (const auto& kv : sections_) out.push_back(kv.first);
  return out;
}

// ---- the common sections -------------------------------------------------------------------

namespace {

const char* const kCommonSections[] = {"data", "model", "train", "eval", "output", "dist"};

std::string joined(const std::vector<std::string>& names, const char* sep) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : sep) + n;
  return out;
}

std::vector<std::string> type_names(const std::vector<SectionType>& types) {
  std::vector<std::string> out;
  for (const auto& t : types) out.push_back(t.name);
  return out;
}

const SectionType* find_type(const std::vector<SectionType>& types, const std::string& name) {
  for (const auto& t : types)
    if (t.name == name) return &t;
  return nullptr;
}

void declare_implicit_slim(KeyTable& t, ImplicitSLIMConfig& s) {
  t.custom(
      "implicit_slim",
      [&t, &s](const YAML::Node& n, const std::string& key) {
        if (!n.IsMap()) t.fail(key, "expected a mapping {every, lambda, alpha, threshold}");
        for (const auto& kv : n) {
          const std::string sub = kv.first.as<std::string>(), k = key + "." + sub;
          if (!kv.second.IsScalar()) t.fail(k, "expected a number");
          try {
            if (sub == "every") {
              s.every = kv.second.as<int>();
              if (s.every < 0) t.fail(k, "must be >= 0 (0: off)");
            } else if (sub == "lambda" || sub == "alpha" || sub == "threshold") {
              const double v = kv.second.as<double>();
              if (!std::isfinite(v) || v < 0 || (sub != "threshold" && v == 0))
                t.fail(k, sub == "threshold" ? "must be >= 0" : "must be > 0");
              (sub == "lambda" ? s.lambda : sub == "alpha" ? s.alpha : s.threshold) = v;
            } else {
              t.fail(k, "unknown key (known: every, lambda, alpha, threshold)");
            }
          } catch (const YAML::Exception&) {
            t.fail(k, std::string(sub == "every" ? "expected an integer" : "expected a number") + ", got '" +
                          kv.second.Scalar() + "'");
          }
        }
      },
      [&s] {
        YAML::Node n(YAML::NodeType::Map);
        n["every"] = s.every;
        n["lambda"] = s.lambda;
        n["alpha"] = s.alpha;
        n["threshold"] = s.threshold;
        n.SetStyle(YAML::EmitterStyle::Flow);
        return n;
      },
      "RecVAE only: ImplicitSLIM (Shenbin and Nikolenko 2023). Before every `every`-th epoch (0: off) the "
      "encoder's first-layer item embeddings and the decoder's item embeddings are replaced by their ImplicitSLIM "
      "projection, computed from X^T X products that every rank sums over its own users (never a dense Gram; Note "
      "[ImplicitSLIM]). Items with fewer than `threshold` interactions are left out of the projection; `lambda` "
      "and `alpha` as in the authors' `--lambd` and `--alpha` (their ML-20M recipe: every 10, lambda 500, alpha 1, "
      "threshold 1000, with recvae.latent_dim 400, recvae.gamma 0.004, 100 epochs)");
  t.shown_default("{every: 0, lambda: 500, alpha: 1, threshold: 1000}");
}

// The keys of common section `name` of `c`, declared into `t`.
void declare_common(const std::string& name, Config& c, KeyTable& t, const std::vector<std::string>& types) {
  if (name == "data") {
    t.text("path", c.data.path, {},
           "split file made by `recvae_prep` or `recvae_synth` (relative paths: from the working directory)")
        .shown_default("(required)");
  } else if (name == "model") {
    t.text("type", c.model.type, types,
           "`" + joined(types, "`, `") +
               "`: which model the run trains. Its own keys are in the section of the same name; a section of "
               "another model is an error naming it (ract also takes its actor's section)");
    declare_implicit_slim(t, c.model.implicit_slim);
  } else if (name == "train") {
    t.num("epochs", c.train.epochs, 0, 1e6,
          "epochs (ALS: epochs of a user and an item step); unset: 50, wmf and pmf 16, ract "
          "ract.actor_epochs + critic_epochs + ac_epochs (leave it out for ract)")
        .shown_default("model's");
    t.num("batch_size", c.train.batch_size, 1, 1LL << 40, "global batch size in users, whatever the number of ranks");
    t.num("lr", c.train.lr, 0.0, 1e3,
          "Adam learning rate of every parameter group (default betas, no weight decay); unset: 0.0005 for recvae, "
          "0.01 for cdae, 0.001 for the others; ract: its actor's (the critic and the actor-critic optimiser have "
          "their own, `ract.*_lr`)",
          true)
        .shown_default("model's");
    t.num("dropout", c.train.dropout, 0.0, 1.0,
          "input dropout of training passes (RecVAE: encoder passes only), in [0, 1); unset: 0.5, CDAE 0.2, AutoRec 0",
          false, true)
        .shown_default("model's");
    t.num("seed", c.train.seed, 0.0, 18446744073709551615.0,
          "seed of the initialisation, the per-pass permutations and the per-user noise");
    t.num(
        "threads", c.train.threads, 0, 4096,
        "intra-op threads per rank; 0 = cores of the node / ranks on the node, at most the CPUs of the rank's "
        "affinity mask (mpirun binds a rank to one core unless given `--bind-to none`; rank 0 warns when "
        "`train.threads` exceeds its mask), and no more than the CPUs that other processes leave free at the start "
        "(sampled for 0.2 s; rank 0 says when it takes fewer). Keep ranks x threads (plus any other job's threads) at "
        "or below the "
        "cores: OpenMP threads spin when the cores are oversubscribed, and small-matrix work (ALS solves, "
        "evaluation) slows by far more than the share lost (a WMF epoch on Gowalla at dim 64: 2 s alone, 160 s beside "
        "four other busy threads on 2 cores)");
    t.num("max_steps_per_pass", c.train.max_steps_per_pass, 0, 1LL << 40,
          "> 0 truncates every pass (smoke tests, benchmarks)");
    t.num("patience", c.train.patience, 0, 1 << 30,
          "> 0: stop training once validation NDCG@100 has not improved for this many epochs (the best epoch is still "
          "the one tested and saved; `final.json` says `stopped_early`); 0: run every epoch. Closed forms (EASE, "
          "SLIM) ignore it; RaCT counts it in its actor-critic epochs only");
    t.text("precision", c.train.precision, {"fp32", "tf32"},
           "`tf32`: CUDA matrix products in TF32 (faster on Ampere/Hopper; no effect on CPU)");
  } else if (name == "eval") {
    t.num("batch_size", c.eval.batch_size, 1, 1LL << 40, "users scored at once");
    t.flag("popularity_baseline", c.eval.popularity_baseline,
           "also evaluate the popularity ranking (the floor every result is compared to)");
    t.flag("test", c.eval.test, "evaluate the best model on the test users at the end");
  } else if (name == "output") {
    t.text("dir", c.output.dir, {}, "run directory (config.yaml, metrics.jsonl, final.json, best_model.pt, model.h5)");
    t.flag("save_model", c.output.save_model, "write best_model.pt and model.h5");
    t.num("progress_seconds", c.output.progress_seconds, 0.0, 1e9,
          "at most one progress line per this many seconds within a pass (0: none)");
    t.num("checkpoint_every", c.output.checkpoint_every, 0, 1e6,
          "write a checkpoint every this many epochs (0: only at the end and on SIGTERM/SIGUSR1)");
    t.num("checkpoint_keep", c.output.checkpoint_keep, 1, 1000,
          "checkpoints kept in `output.dir/checkpoints/` (the newest is named by `latest`)");
    t.flag("auto_resume", c.output.auto_resume,
           "resume from `output.dir`'s latest checkpoint when there is one (as `--resume` does)");
  } else if (name == "dist") {
    t.text("backend", c.dist.backend, {"auto", "nccl", "mpi"},
           "auto: NCCL when every rank has a GPU and NCCL is built, else MPI; `nccl`; `mpi`");
    t.text("device", c.dist.device, {"auto", "cpu", "cuda"},
           "auto: the GPU of the rank's local rank if it has one; `cpu`; `cuda` (required)");
    t.flag("allow_cpu", c.dist.allow_cpu,
           "with device auto on a GPU node: let a rank without a GPU of its own run on the CPU");
    t.num("timeout_seconds", c.dist.timeout_seconds, 0.0, 1e9,
          "deadline of one NCCL collective before the job is aborted with a message", true);
    t.text("device_data", c.dist.device_data, {"auto", "on", "off"},
           "`on`: shards live on the compute device and batches are assembled and evaluated there (no per-step "
           "host copies of rows); auto: on for GPUs, off for CPUs");
    t.text("optimizer", c.dist.optimizer, {"replicated", "sharded"},
           "`sharded`: each rank runs Adam on 1/N of every replicated group (reduce-scatter the gradients, all-gather "
           "the parameters; ZeRO-1); `replicated`: all-reduce and the whole update on every rank");
    t.text("grad_dtype", c.dist.grad_dtype, {"fp32", "bf16"},
           "type on the wire of the gradients and, when sharded, of the parameter updates (`bf16`: half the "
           "bytes; accumulation, Adam and the parameters stay fp32)");
    t.num("bucket_mb", c.dist.bucket_mb, 0.0, 1e6,
          "> 0: each group's gradients cross the wire in buckets of at least this many MiB (whole parameters), each "
          "sent by a communication thread as soon as backward has produced it, overlapping backward; 0: one "
          "collective per group after backward");
  }
}

bool is_common(const std::string& name) {
  for (const char* s : kCommonSections)
    if (name == s) return true;
  return false;
}

// RecVAE's own keys lived in model: and train: before other models existed.
std::string moved_hint(const std::string& key) {
  static const std::vector<std::string> moved{
      "model.hidden_dim", "model.latent_dim", "model.layernorm_eps",  "model.prior_weights",  "model.prior_wide_logvar",
      "train.gamma",      "train.beta",       "train.encoder_passes", "train.decoder_passes", "train.alternating"};
  for (const auto& m : moved)
    if (m == key)
      return " (RecVAE's keys are in the recvae: section now: recvae." + key.substr(key.find('.') + 1) + ")";
  return "";
}

// Declares into `t` every key of section `name` of `c` (a common one, or a model section held
// by c.sections). The table's readers and writers refer to `c` (and to `t`): both must outlive
// its use.
void declare_section(KeyTable& t, const std::string& name, Config& c, const std::vector<std::string>& types) {
  if (is_common(name))
    declare_common(name, c, t, types);
  else if (ConfigSection* s = c.sections.find(name))
    s->declare(t);
}

// Sections used by the run that the store lacks are made with their defaults. A section made
// here may name others (RaCT -> its actor), so the list is read again until nothing is added.
void complete_sections(Config& c, const std::vector<SectionType>& types) {
  for (bool added = true; added;) {
    added = false;
    for (const auto& name : c.used_sections())
      if (!c.sections.find(name))
        if (const SectionType* t = find_type(types, name)) {
          c.sections.put(name, t->make());
          added = true;
        }
  }
}

}  // namespace

std::vector<std::string> Config::used_sections() const {
  std::vector<std::string> out{model.type};
  if (const ConfigSection* s = sections.find(model.type))
    for (const auto& other : s->also_uses(*this)) out.push_back(other);
  return out;
}

std::string Config::to_yaml() const {
  Config copy = *this;  // KeyTable binds to members it may write: give it a copy
  YAML::Node root;
  std::vector<std::string> names(std::begin(kCommonSections), std::end(kCommonSections));
  for (const auto& s : copy.used_sections())
    if (copy.sections.find(s)) names.push_back(s);
  for (const auto& name : names) {
    KeyTable t(name, "");
    declare_section(t, name, copy, {});
    for (const auto& k : t.keys()) root[name][k.name.substr(name.size() + 1)] = k.write();
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

void fill_train_defaults(Config& c, const std::vector<SectionType>& types) {
  complete_sections(c, types);
  TrainDefaults d;
  if (const ConfigSection* s = c.sections.find(c.model.type)) d = s->train_defaults(c);
  if (c.train.epochs < 0) c.train.epochs = d.epochs;
  if (c.train.lr < 0) c.train.lr = d.lr;
  if (c.train.dropout < 0) c.train.dropout = d.dropout;
}

void adopt_sections(Config& c) {
  for (const auto& name : c.used_sections())
    if (ConfigSection* s = c.sections.find(name)) {
      std::vector<std::string> notes = s->adopt(c);
      c.notes.insert(c.notes.end(), notes.begin(), notes.end());
    }
}

Config read_config(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides,
                   const std::vector<SectionType>& types) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw InputError(source + ": YAML syntax error at line " + std::to_string(e.mark.line + 1) + ", column " +
                     std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& ov : overrides) {
    auto eq = ov.find('=');
    auto dot = ov.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      throw InputError("--set " + ov + ": expected section.key=value");
    const std::string section = ov.substr(0, dot), key = ov.substr(dot + 1, eq - dot - 1);
    YAML::Node value;
    try {
      value = YAML::Load(ov.substr(eq + 1));
    } catch (const YAML::Exception&) {
      throw InputError("--set " + ov + ": value is not valid YAML");
    }
    if (!root.IsMap()) break;  // reported below
    const YAML::Node set_to = value.IsNull() ? YAML::Node(std::string()) : value;
    const auto sub = key.find('.');
    if (sub == std::string::npos) {
      root[section][key] = set_to;
      continue;
    }
    // section.key.entry=value sets one entry of a mapping-valued key (model.implicit_slim.every=5)
    // and keeps the mapping's other entries.
    const std::string outer = key.substr(0, sub), entry = key.substr(sub + 1);
    if (entry.empty() || entry.find('.') != std::string::npos)
      throw InputError("--set " + ov + ": expected section.key=value or section.key.entry=value");
    if (root[section] && root[section].IsMap() && root[section][outer] && !root[section][outer].IsNull() &&
        !root[section][outer].IsMap())
      throw InputError("--set " + ov + ": " + section + "." + outer + " is not a mapping");
    root[section][outer][entry] = set_to;
  }
  if (!root.IsMap()) throw InputError(source + ": expected a mapping of sections at the top level");

  const std::vector<std::string> names = type_names(types);
  Config config;
  std::vector<std::string> seen_models;
  for (const auto& sec : root) {
    const std::string section = sec.first.as<std::string>();
    const SectionType* type = find_type(types, section);
    if (!is_common(section) && !type)
      throw InputError(
          source + ": unknown config section '" + section +
          "' (known: data, model, train, eval, output, dist, and one per model type: " + joined(names, ", ") + ")");
    if (type) {
      seen_models.push_back(section);
      if (!config.sections.find(section)) config.sections.put(section, type->make());
    }
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap()) throw InputError(source + ": section '" + section + "' must be a mapping");
    KeyTable table(section, source);
    declare_section(table, section, config, names);
    for (const auto& kv : sec.second) {
      const std::string key = section + "." + kv.first.as<std::string>();
      const KeyTable::Key* found = nullptr;
      for (const auto& k : table.keys())
        if (k.name == key) found = &k;
      if (!found) throw InputError(source + ": unknown config key '" + key + "'" + moved_hint(key));
      found->read(kv.second, key);
    }
  }
  // A section of another model would silently do nothing: refuse it, naming it.
  complete_sections(config, types);
  const std::vector<std::string> used = config.used_sections();
  for (const auto& section : seen_models) {
    bool is_used = false;
    for (const auto& u : used) is_used = is_used || u == section;
    if (!is_used) {
      throw InputError(source + ": section '" + section + "' configures model.type " + section +
                       ", but this run's model.type is " + config.model.type +
                       (used.size() > 1 ? ", which reads the sections " + joined(used, ", ") : std::string()) +
                       " (remove the section or change model.type)");
    }
  }
  if (config.model.implicit_slim.every > 0 && config.model.type != "recvae")
    throw InputError(source + ": model.implicit_slim applies to model.type recvae, not " + config.model.type);
  for (const auto& section : used)
    if (const ConfigSection* s = config.sections.find(section)) s->validate(config, source);
  fill_train_defaults(config, types);
  if (config.data.path.empty()) throw InputError(source + ": config key 'data.path' is required");
  if (config.output.dir.empty()) throw InputError(source + ": config key 'output.dir' must not be empty");
  return config;
}

std::string shown_value(const YAML::Node& n) {
  if (n.IsSequence()) {
    std::string out;
    for (const auto& v : n) out += (out.empty() ? "" : ", ") + shown_value(v);
    return "[" + out + "]";
  }
  if (!n.IsScalar()) {
    YAML::Emitter e;
    e << n;
    return e.c_str();
  }
  const std::string& text = n.Scalar();
  if (text.find_first_of(".eE") == std::string::npos) return text;
  try {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", n.as<double>());
    return buf;
  } catch (const YAML::Exception&) {
    return text;
  }
}

std::vector<std::string> config_key_rows(const std::vector<SectionType>& types) {
  Config c;
  for (const auto& t : types) c.sections.put(t.name, t.make());
  std::vector<std::string> sections(std::begin(kCommonSections), std::end(kCommonSections));
  for (const auto& t : types) sections.push_back(t.name);
  std::vector<std::string> rows;
  for (const auto& name : sections) {
    KeyTable t(name, "");
    declare_section(t, name, c, type_names(types));
    for (const auto& k : t.keys()) {
      std::string shown = k.default_text;
      if (shown.empty()) {
        shown = shown_value(k.write());
        if (shown.empty() || shown == "~") shown = "\"\"";
      }
      rows.push_back("| `" + k.name + "` | " + shown + " | " + k.meaning + " |");
    }
  }
  return rows;
}

}  // namespace recvae
