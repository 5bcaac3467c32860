#include "recvae/models/registry.h"

#include <fstream>
#include <sstream>

#include "recvae/models/autorec.h"
#include "recvae/models/cdae.h"
#include "recvae/models/ease.h"
#include "recvae/models/multdae.h"
#include "recvae/models/multvae.h"
#include "recvae/models/ract.h"
#include "recvae/models/recvae.h"
#include "recvae/models/slim.h"
#include "recvae/models/wmf.h"
#include "recvae/util/error.h"

namespace recvae {

// Adding a model: its own header and source (the model, its config section, its make_ function)
// and one line here.
const std::vector<ModelType>& model_registry() {
  static const std::vector<ModelType> types{
      registered<RecVAEConfig>(make_recvae),   registered<MultVAEConfig>(make_multvae),
      registered<MultDAEConfig>(make_multdae), registered<CDAEConfig>(make_cdae),
      registered<AutoRecConfig>(make_autorec), registered<RaCTConfig>(make_ract),
      registered<EASEConfig>(make_ease),       registered<SLIMConfig>(make_slim),
      registered<WMFConfig>(make_wmf),         registered<PMFConfig>(make_pmf),
  };
  return types;
}

std::vector<std::string> model_types() {
  std::vector<std::string> names;
  for (const auto& t : model_registry()) names.push_back(t.name);
  return names;
}

const ModelType& model_type(const std::string& name) {
  for (const auto& t : model_registry())
    if (t.name == name) return t;
  std::string list;
  for (const auto& t : model_registry()) list += (list.empty() ? "" : ", ") + t.name;
  throw InputError("unknown model.type '" + name + "' (valid: " + list + ")");
}

AnyModel make_model(const Config& config, const ModelContext& ctx) {
  return model_type(config.model.type).make(config, ctx);
}

std::vector<SectionType> config_section_types() {
  std::vector<SectionType> out;
  for (const auto& t : model_registry()) out.push_back({t.name, t.section});
  return out;
}

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  return read_config(yaml_text, source, overrides, config_section_types());
}

namespace {

std::string read_config_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_config(read_config_text(path), path, overrides);
}

std::vector<std::string> check_override_sets(const std::string& path,
                                             const std::vector<std::vector<std::string>>& sets) {
  const std::string text = read_config_text(path);
  std::vector<std::string> reasons;
  for (const auto& overrides : sets) {
    try {
      Config c = parse_config(text, path, overrides);
      apply_model_defaults(c);
      reasons.emplace_back();
    } catch (const InputError& e) {
      reasons.emplace_back(e.what());
    }
  }
  return reasons;
}

void apply_model_defaults(Config& config) {
  fill_train_defaults(config, config_section_types());  // first: it adds the sections adopt_sections fills
  adopt_sections(config);
}

}  // namespace recvae
