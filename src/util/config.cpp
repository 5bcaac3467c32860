#include "recvae/util/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <type_traits>
#include <sstream>

#include "recvae/util/error.h"

namespace recvae {
namespace {

// One settable key: how to read it from YAML and how to write it back.
struct Field {
  std::function<void(const YAML::Node&, const std::string& key)> read;
  std::function<YAML::Node()> write;
};

class Schema {
 public:
  Schema(Config& c, std::string source) : source_(std::move(source)) {
    str("model.type", c.model.type, model_types());
    fields_["model.implicit_slim"] = {
        [this, &c](const YAML::Node& n, const std::string& key) {
          if (!n.IsMap()) fail(key, "expected a mapping {every, lambda, alpha, threshold}");
          ImplicitSLIMConfig& s = c.model.implicit_slim;
          for (const auto& kv : n) {
            const std::string sub = kv.first.as<std::string>(), k = key + "." + sub;
            if (sub == "every") {
              s.every = scalar<int>(kv.second, k, "an integer");
              if (s.every < 0) fail(k, "must be >= 0 (0: off)");
            } else if (sub == "lambda" || sub == "alpha" || sub == "threshold") {
              const double v = scalar<double>(kv.second, k, "a number");
              if (!std::isfinite(v) || v < 0 || (sub != "threshold" && v == 0)) fail(k, sub == "threshold" ? "must be >= 0" : "must be > 0");
              (sub == "lambda" ? s.lambda : sub == "alpha" ? s.alpha : s.threshold) = v;
            } else {
              fail(k, "unknown key (known: every, lambda, alpha, threshold)");
            }
          }
        },
        [&c] {
          YAML::Node n(YAML::NodeType::Map);
          n["every"] = c.model.implicit_slim.every;
          n["lambda"] = c.model.implicit_slim.lambda;
          n["alpha"] = c.model.implicit_slim.alpha;
          n["threshold"] = c.model.implicit_slim.threshold;
          n.SetStyle(YAML::EmitterStyle::Flow);
          return n;
        }};

    num("recvae.hidden_dim", c.recvae.hidden_dim, 1, 1 << 20);
    num("recvae.latent_dim", c.recvae.latent_dim, 1, 1 << 20);
    num("recvae.layernorm_eps", c.recvae.layernorm_eps, 0.0, 1e9, /*open_lo=*/true);
    fields_["recvae.prior_weights"] = {
        [this, &c](const YAML::Node& n, const std::string& key) {
          if (!n.IsSequence() || n.size() != 3) fail(key, "expected a list of 3 numbers");
          double sum = 0;
          for (int i = 0; i < 3; ++i) {
            c.recvae.prior_weights[i] = scalar<double>(n[i], key, "a number");
            if (!(c.recvae.prior_weights[i] > 0)) fail(key, "weights must be > 0");
            sum += c.recvae.prior_weights[i];
          }
          if (std::abs(sum - 1.0) > 1e-6) fail(key, "weights must sum to 1");
        },
        [&c] {
          YAML::Node n(YAML::NodeType::Sequence);
          for (double w : c.recvae.prior_weights) n.push_back(w);
          n.SetStyle(YAML::EmitterStyle::Flow);
          return n;
        }};
    num("recvae.prior_wide_logvar", c.recvae.prior_wide_logvar, -100.0, 100.0);
    num("recvae.gamma", c.recvae.gamma, 0.0, 1e6);
    num("recvae.beta", c.recvae.beta, 0.0, 1e6);
    num("recvae.encoder_passes", c.recvae.encoder_passes, 0, 1000);
    num("recvae.decoder_passes", c.recvae.decoder_passes, 0, 1000);
    flag("recvae.alternating", c.recvae.alternating);

    num("multvae.hidden_dim", c.multvae.hidden_dim, 1, 1 << 20);
    num("multvae.latent_dim", c.multvae.latent_dim, 1, 1 << 20);
    num("multvae.beta_cap", c.multvae.beta_cap, 0.0, 1e6);
    num("multvae.anneal_steps", c.multvae.anneal_steps, 0, 1LL << 40);
    num("multvae.l2", c.multvae.l2, 0.0, 1e6);

    num("multdae.latent_dim", c.multdae.latent_dim, 1, 1 << 20);
    num("multdae.l2", c.multdae.l2, 0.0, 1e6);

    num("cdae.hidden_dim", c.cdae.hidden_dim, 1, 1 << 20);
    num("cdae.l2", c.cdae.l2, 0.0, 1e6);
    num("cdae.foldin_steps", c.cdae.foldin_steps, 0, 100000);
    num("cdae.foldin_lr", c.cdae.foldin_lr, 0.0, 1e3, true);

    str("ract.actor", c.ract.actor, {"multvae", "recvae"});
    str("ract.actor_run", c.ract.actor_run, {});
    num("ract.actor_epochs", c.ract.actor_epochs, 0, 1000000);
    num("ract.critic_epochs", c.ract.critic_epochs, 0, 1000000);
    num("ract.ac_epochs", c.ract.ac_epochs, 0, 1000000);
    num("ract.critic_lr", c.ract.critic_lr, 0.0, 1e3, true);
    num("ract.actor_lr", c.ract.actor_lr, 0.0, 1e3, true);
    num("ract.critic_l2", c.ract.critic_l2, 0.0, 1e6);

    numbers("ease.lambda", c.ease.lambda, "lambda", true);
    num("ease.memory_limit_gb", c.ease.memory_limit_gb, 0.0, 1e9);
    str("ease.precision", c.ease.precision, {"float64", "float32"});

    numbers("slim.l1", c.slim.l1, "l1", false);
    numbers("slim.l2", c.slim.l2, "l2", false);
    num("slim.max_sweeps", c.slim.max_sweeps, 1, 1000000);
    num("slim.tolerance", c.slim.tolerance, 0.0, 1e6, true);
    num("slim.memory_limit_gb", c.slim.memory_limit_gb, 0.0, 1e9);
    str("slim.precision", c.slim.precision, {"float32", "float64"});

    num("wmf.dim", c.wmf.dim, 1, 1 << 16);
    num("wmf.regularization", c.wmf.regularization, 0.0, 1e12);
    num("wmf.regularization_exp", c.wmf.regularization_exp, 0.0, 10.0);
    num("wmf.unobserved_weight", c.wmf.unobserved_weight, 0.0, 1e12);
    num("wmf.alpha", c.wmf.alpha, 0.0, 1e12);
    num("wmf.init_stddev", c.wmf.init_stddev, 0.0, 1e6, true);
    num("pmf.dim", c.pmf.dim, 1, 1 << 16);
    num("pmf.regularization", c.pmf.regularization, 0.0, 1e12);
    num("pmf.init_stddev", c.pmf.init_stddev, 0.0, 1e6, true);

    num("autorec.hidden_dim", c.autorec.hidden_dim, 1, 1 << 20);
    num("autorec.l2", c.autorec.l2, 0.0, 1e9);

    str("data.path", c.data.path, {});

    num("train.epochs", c.train.epochs, 0, 1000000);
    num("train.batch_size", c.train.batch_size, 1, 1LL << 40);
    num("train.lr", c.train.lr, 0.0, 1e3, true);
    num("train.dropout", c.train.dropout, 0.0, 1.0, false, /*open_hi=*/true);
    num("train.seed", c.train.seed, std::uint64_t{0}, ~std::uint64_t{0});
    num("train.threads", c.train.threads, 0, 4096);
    num("train.max_steps_per_pass", c.train.max_steps_per_pass, 0, 1LL << 40);
    str("train.precision", c.train.precision, {"fp32", "tf32"});

    num("eval.batch_size", c.eval.batch_size, 1, 1LL << 40);
    flag("eval.popularity_baseline", c.eval.popularity_baseline);
    flag("eval.test", c.eval.test);

    str("output.dir", c.output.dir, {});
    flag("output.save_model", c.output.save_model);
    num("output.progress_seconds", c.output.progress_seconds, 0.0, 1e9);
    num("output.checkpoint_every", c.output.checkpoint_every, 0, 1000000);
    num("output.checkpoint_keep", c.output.checkpoint_keep, 1, 1000);
    flag("output.auto_resume", c.output.auto_resume);

    str("dist.backend", c.dist.backend, {"auto", "nccl", "mpi"});
    str("dist.device", c.dist.device, {"auto", "cpu", "cuda"});
    flag("dist.allow_cpu", c.dist.allow_cpu);
    num("dist.timeout_seconds", c.dist.timeout_seconds, 0.0, 1e9, true);
    str("dist.device_data", c.dist.device_data, {"auto", "on", "off"});
  }

  /// Sections that appeared in the YAML (model sections are checked against model.type).
  std::vector<std::string> seen_sections;

  void read(const YAML::Node& root) {
    if (!root || root.IsNull()) return;
    if (!root.IsMap()) throw InputError(source_ + ": expected a mapping of sections at the top level");
    for (const auto& sec : root) {
      const std::string section = sec.first.as<std::string>();
      if (!sections().count(section))
        throw InputError(source_ + ": unknown config section '" + section +
                         "' (known: data, model, train, eval, output, dist, and one per model type: " + type_list() + ")");
      seen_sections.push_back(section);
      if (sec.second.IsNull()) continue;
      if (!sec.second.IsMap()) throw InputError(source_ + ": section '" + section + "' must be a mapping");
      for (const auto& kv : sec.second) {
        const std::string key = section + "." + kv.first.as<std::string>();
        auto it = fields_.find(key);
        if (it == fields_.end()) throw InputError(source_ + ": unknown config key '" + key + "'" + moved_hint(key));
        it->second.read(kv.second, key);
      }
    }
  }

  /// Every key of the common sections and of the model sections `config` uses.
  YAML::Node write(const Config& config) const {
    YAML::Node root;
    for (const auto& [key, f] : fields_) {
      auto dot = key.find('.');
      const std::string section = key.substr(0, dot);
      if (is_model_section(section) && !uses_section(config, section)) continue;
      root[key.substr(0, dot)][key.substr(dot + 1)] = f.write();
    }
    return root;
  }

 private:
  static const std::map<std::string, int>& sections() {
    static const std::map<std::string, int> s = [] {
      std::map<std::string, int> m{{"data", 0}, {"model", 0}, {"train", 0}, {"eval", 0}, {"output", 0}, {"dist", 0}};
      for (const auto& t : model_types()) m[t] = 1;
      return m;
    }();
    return s;
  }

 public:
  /// Whether `section` configures the run's model (RaCT: its own section and its actor's).
  static bool uses_section(const Config& c, const std::string& section) {
    return section == c.model.type || (c.model.type == "ract" && section == c.ract.actor);
  }

  static bool is_model_section(const std::string& section) {
    auto it = sections().find(section);
    return it != sections().end() && it->second == 1;
  }

 private:
  static std::string type_list() {
    std::string list;
    for (const auto& t : model_types()) list += (list.empty() ? "" : ", ") + t;
    return list;
  }

  // RecVAE's own keys lived in model: and train: before other models existed.
  static std::string moved_hint(const std::string& key) {
    static const std::vector<std::string> moved{"model.hidden_dim",     "model.latent_dim",    "model.layernorm_eps",
                                                "model.prior_weights",  "model.prior_wide_logvar", "train.gamma",
                                                "train.beta",           "train.encoder_passes", "train.decoder_passes",
                                                "train.alternating"};
    for (const auto& m : moved)
      if (m == key) return " (RecVAE's keys are in the recvae: section now: recvae." + key.substr(key.find('.') + 1) + ")";
    return "";
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(source_ + ": config key '" + key + "': " + what);
  }

  template <class T>
  T scalar(const YAML::Node& n, const std::string& key, const char* type_name) const {
    if (!n.IsScalar()) fail(key, std::string("expected ") + type_name);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(key, std::string("expected ") + type_name + ", got '" + n.Scalar() + "'");
    }
  }

  template <class T>
  void num(const std::string& key, T& target, std::common_type_t<T> lo, std::common_type_t<T> hi,
           bool open_lo = false, bool open_hi = false) {
    fields_[key] = {[this, &target, lo, hi, open_lo, open_hi](const YAML::Node& n, const std::string& k) {
                      T v = scalar<T>(n, k, std::is_integral_v<T> ? "an integer" : "a number");
                      bool ok = (open_lo ? v > lo : v >= lo) && (open_hi ? v < hi : v <= hi);
                      if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(v);
                      if (!ok) {
                        std::ostringstream msg;
                        msg << "value " << v << " out of range " << (open_lo ? "(" : "[") << lo << ", " << hi
                            << (open_hi ? ")" : "]");
                        fail(k, msg.str());
                      }
                      target = v;
                    },
                    [&target] { return YAML::Node(target); }};
  }

  // A number or a non-empty list of numbers, each finite and > 0 (`positive`) or >= 0: the
  // grids of the closed-form models.
  void numbers(const std::string& key, std::vector<double>& target, const std::string& noun, bool positive) {
    fields_[key] = {[this, &target, noun, positive](const YAML::Node& n, const std::string& k) {
                      target.clear();
                      auto add = [&](const YAML::Node& v) {
                        const double x = scalar<double>(v, k, "a number or a list of numbers");
                        if (!std::isfinite(x) || (positive ? !(x > 0) : !(x >= 0)))
                          fail(k, "every " + noun + " must be a finite number " + (positive ? "> 0" : ">= 0"));
                        target.push_back(x);
                      };
                      if (n.IsSequence()) {
                        for (const auto& v : n) add(v);
                      } else {
                        add(n);
                      }
                      if (target.empty()) fail(k, "expected at least one " + noun);
                    },
                    [&target] {
                      YAML::Node n(YAML::NodeType::Sequence);
                      for (double x : target) n.push_back(x);
                      n.SetStyle(YAML::EmitterStyle::Flow);
                      return n;
                    }};
  }

  void flag(const std::string& key, bool& target) {
    fields_[key] = {[this, &target](const YAML::Node& n, const std::string& k) {
                      target = scalar<bool>(n, k, "true or false");
                    },
                    [&target] { return YAML::Node(target); }};
  }

  void str(const std::string& key, std::string& target, std::vector<std::string> choices) {
    fields_[key] = {[this, &target, choices](const YAML::Node& n, const std::string& k) {
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
                    [&target] { return YAML::Node(target); }};
  }

  std::string source_;
  std::map<std::string, Field> fields_;
};

}  // namespace

// Defaults of the shared training keys that differ by model: the authors' values.
void apply_model_defaults(Config& c) {
  const std::string& t = c.model.type == "ract" ? c.ract.actor : c.model.type;  // RaCT pre-trains its actor
  if (c.train.epochs < 0)
    c.train.epochs = c.model.type == "ract"                          ? c.ract.actor_epochs + c.ract.critic_epochs + c.ract.ac_epochs
                     : c.model.type == "wmf" || c.model.type == "pmf" ? 16  // Rendle et al.'s ALS epochs
                                                                      : 50;
  // CDAE's logistic loss over every item starts far from its optimum (all outputs near 0.5)
  // and needs a larger step than the multinomial models; 0.01 was the best of {1e-3, 3e-3, 1e-2}
  // on the synthetic sets.
  if (c.train.lr < 0) c.train.lr = t == "recvae" ? 5e-4 : t == "cdae" ? 1e-2 : 1e-3;
  if (c.train.dropout < 0) c.train.dropout = t == "autorec" ? 0.0 : t == "cdae" ? 0.2 : 0.5;
}

const std::vector<std::string>& model_types() {
  static const std::vector<std::string> types{"recvae", "multvae", "multdae", "cdae", "autorec",
                                              "ract",   "ease",    "slim",    "wmf",  "pmf"};
  return types;
}

std::string Config::to_yaml() const {
  Config copy = *this;
  Schema schema(copy, "");
  YAML::Emitter out;
  out << schema.write(*this);
  return std::string(out.c_str()) + "\n";
}

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
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
    if (!root.IsMap()) break;  // reported by the schema below
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
  Config config;
  Schema schema(config, source);
  schema.read(root);
  // A section of another model would silently do nothing: refuse it, naming it.
  for (const auto& section : schema.seen_sections)
    if (Schema::is_model_section(section) && !Schema::uses_section(config, section))
      throw InputError(source + ": section '" + section + "' configures model.type " + section +
                       ", but this run's model.type is " + config.model.type +
                       (config.model.type == "ract" ? " with ract.actor " + config.ract.actor : std::string()) +
                       " (remove the section or change model.type)");
  if (config.model.implicit_slim.every > 0 && config.model.type != "recvae")
    throw InputError(source + ": model.implicit_slim applies to model.type recvae, not " + config.model.type);
  if (config.model.type == "ract") {
    const RaCTConfig& r = config.ract;
    const int phases = r.actor_epochs + r.critic_epochs + r.ac_epochs;
    if (r.actor_run.empty() && r.actor_epochs == 0)
      throw InputError(source + ": ract needs an actor: set ract.actor_run (a finished " + r.actor +
                       " run directory) or ract.actor_epochs > 0");
    if (!r.actor_run.empty() && r.actor_epochs > 0)
      throw InputError(source + ": set either ract.actor_run or ract.actor_epochs, not both");
    if (config.train.epochs >= 0 && config.train.epochs != phases)
      throw InputError(source + ": config key 'train.epochs' is " + std::to_string(config.train.epochs) +
                       " but ract.actor_epochs + ract.critic_epochs + ract.ac_epochs is " + std::to_string(phases) +
                       " (leave train.epochs out for ract)");
    if (config.train.dropout == 0)
      throw InputError(source + ": ract needs train.dropout > 0 (the dropped items are the critic's unseen items)");
  }
  apply_model_defaults(config);
  if (config.data.path.empty()) throw InputError(source + ": config key 'data.path' is required");
  if (config.model.type == "recvae") {
    if (config.recvae.alternating && config.recvae.encoder_passes + config.recvae.decoder_passes == 0)
      throw InputError(source + ": config keys 'recvae.encoder_passes' and 'recvae.decoder_passes' are both 0");
    if (config.recvae.gamma == 0 && config.recvae.beta == 0)
      throw InputError(source + ": config keys 'recvae.gamma' and 'recvae.beta' are both 0 (no KL term)");
  }
  if (config.output.dir.empty()) throw InputError(source + ": config key 'output.dir' must not be empty");
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

}  // namespace recvae
