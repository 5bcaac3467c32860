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
    num("model.hidden_dim", c.model.hidden_dim, 1, 1 << 20);
    num("model.latent_dim", c.model.latent_dim, 1, 1 << 20);
    num("model.layernorm_eps", c.model.layernorm_eps, 0.0, 1e9, /*open_lo=*/true);
    fields_["model.prior_weights"] = {
        [this, &c](const YAML::Node& n, const std::string& key) {
          if (!n.IsSequence() || n.size() != 3) fail(key, "expected a list of 3 numbers");
          double sum = 0;
          for (int i = 0; i < 3; ++i) {
            c.model.prior_weights[i] = scalar<double>(n[i], key, "a number");
            if (!(c.model.prior_weights[i] > 0)) fail(key, "weights must be > 0");
            sum += c.model.prior_weights[i];
          }
          if (std::abs(sum - 1.0) > 1e-6) fail(key, "weights must sum to 1");
        },
        [&c] {
          YAML::Node n(YAML::NodeType::Sequence);
          for (double w : c.model.prior_weights) n.push_back(w);
          n.SetStyle(YAML::EmitterStyle::Flow);
          return n;
        }};
    num("model.prior_wide_logvar", c.model.prior_wide_logvar, -100.0, 100.0);

    str("data.path", c.data.path, {});

    num("train.epochs", c.train.epochs, 0, 1000000);
    num("train.batch_size", c.train.batch_size, 1, 1LL << 40);
    num("train.lr", c.train.lr, 0.0, 1e3, true);
    num("train.gamma", c.train.gamma, 0.0, 1e6);
    num("train.beta", c.train.beta, 0.0, 1e6);
    num("train.encoder_passes", c.train.encoder_passes, 0, 1000);
    num("train.decoder_passes", c.train.decoder_passes, 0, 1000);
    flag("train.alternating", c.train.alternating);
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

  void read(const YAML::Node& root) {
    if (!root || root.IsNull()) return;
    if (!root.IsMap()) throw InputError(source_ + ": expected a mapping of sections at the top level");
    for (const auto& sec : root) {
      const std::string section = sec.first.as<std::string>();
      if (!sections().count(section))
        throw InputError(source_ + ": unknown config section '" + section + "' (known: data, model, train, eval, output, dist)");
      if (sec.second.IsNull()) continue;
      if (!sec.second.IsMap()) throw InputError(source_ + ": section '" + section + "' must be a mapping");
      for (const auto& kv : sec.second) {
        const std::string key = section + "." + kv.first.as<std::string>();
        auto it = fields_.find(key);
        if (it == fields_.end()) throw InputError(source_ + ": unknown config key '" + key + "'");
        it->second.read(kv.second, key);
      }
    }
  }

  YAML::Node write() const {
    YAML::Node root;
    for (const auto& [key, f] : fields_) {
      auto dot = key.find('.');
      root[key.substr(0, dot)][key.substr(dot + 1)] = f.write();
    }
    return root;
  }

 private:
  static const std::map<std::string, int>& sections() {
    static const std::map<std::string, int> s{{"data", 0}, {"model", 0}, {"train", 0},
                                              {"eval", 0}, {"output", 0}, {"dist", 0}};
    return s;
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

std::string Config::to_yaml() const {
  Config copy = *this;
  Schema schema(copy, "");
  YAML::Emitter out;
  out << schema.write();
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
    root[section][key] = value.IsNull() ? YAML::Node(std::string()) : value;
  }
  Config config;
  Schema(config, source).read(root);
  if (config.data.path.empty()) throw InputError(source + ": config key 'data.path' is required");
  if (config.train.alternating && config.train.encoder_passes + config.train.decoder_passes == 0)
    throw InputError(source + ": config keys 'train.encoder_passes' and 'train.decoder_passes' are both 0");
  if (config.train.gamma == 0 && config.train.beta == 0)
    throw InputError(source + ": config keys 'train.gamma' and 'train.beta' are both 0 (no KL term)");
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
