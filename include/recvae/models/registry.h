#pragma once
// The model registry: every model type, its config section and its factory, listed once
// (registry.cpp). The config parser, make_model, `recvae_dist --help`'s model list and
// configs/README.md's key table all read it.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "recvae/models/any_model.h"
#include "recvae/util/config.h"

namespace recvae {

/// One registered model type.
struct ModelType {
  std::string name;                                         ///< the `model.type` value, also its config section's name
  std::string summary;                                      ///< one line for --help and the docs
  std::function<std::unique_ptr<ConfigSection>()> section;  ///< its section, with defaults
  std::function<AnyModel(const Config&, const ModelContext&)> make;  ///< builds the model
};

/// Every model type, in the order of the docs.
const std::vector<ModelType>& model_registry();
/// The names of model_registry(), in order.
std::vector<std::string> model_types();
/// The registered type `name`; InputError listing the valid ones when there is none.
const ModelType& model_type(const std::string& name);

/// The model named by config.model.type, initialised from the current torch seed.
AnyModel make_model(const Config& config, const ModelContext& ctx);

/// The registry's sections as the config parser takes them.
std::vector<SectionType> config_section_types();
/// Parses YAML text with every registered model section (util/config.h's read_config).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
/// Reads and parses a config file; InputError when it is missing or unreadable.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
/// Checks the config file `path` under each override set in turn, as load_config and
/// apply_model_defaults would: one entry per set, empty where it is valid, else the reason
/// (recvae_dist --check-sets: a sweep checks all its trials in one process). InputError when the
/// file cannot be read.
std::vector<std::string> check_override_sets(const std::string& path,
                                             const std::vector<std::vector<std::string>>& sets);
/// Adds the sections model.type uses, fills the shared train keys left unset with its defaults
/// and adopts what the sections take from finished runs (adopt_sections: RaCT's actor section).
/// parse_config does the first two; the Trainer and --check do all three.
void apply_model_defaults(Config& config);

/// One registry entry for section type S and factory `make` (returning the model's training
/// style interface): registered<EASEConfig>(make_ease).
template <class S, class Make>
ModelType registered(Make make) {
  return {S::kName, S::kSummary, [] { return std::make_unique<S>(); },
          [make](const Config& c, const ModelContext& ctx) { return AnyModel(make(c, ctx)); }};
}

}  // namespace recvae
