#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "../common/test_util.h"
#include "recvae/models/ease.h"
#include "recvae/models/ract.h"
#include "recvae/models/recvae.h"
#include "recvae/models/registry.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "test.yaml", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsAreTheSpecs) {
  Config c = parse_config("data: {path: x.h5}", "t.yaml");
  EXPECT_EQ(c.section<RecVAEConfig>().hidden_dim, 600);
  EXPECT_EQ(c.section<RecVAEConfig>().latent_dim, 200);
  EXPECT_DOUBLE_EQ(c.section<RecVAEConfig>().layernorm_eps, 0.1);
  EXPECT_DOUBLE_EQ(c.section<RecVAEConfig>().prior_weights[0], 0.15);
  EXPECT_DOUBLE_EQ(c.section<RecVAEConfig>().prior_weights[1], 0.75);
  EXPECT_DOUBLE_EQ(c.section<RecVAEConfig>().prior_weights[2], 0.1);
  EXPECT_DOUBLE_EQ(c.section<RecVAEConfig>().prior_wide_logvar, 10.0);
  EXPECT_EQ(c.train.batch_size, 500);
  EXPECT_DOUBLE_EQ(c.train.lr, 5e-4);
  EXPECT_DOUBLE_EQ(c.section<RecVAEConfig>().gamma, 0.005);
  EXPECT_EQ(c.section<RecVAEConfig>().encoder_passes, 3);
  EXPECT_EQ(c.section<RecVAEConfig>().decoder_passes, 1);
  EXPECT_TRUE(c.section<RecVAEConfig>().alternating);
  EXPECT_DOUBLE_EQ(c.train.dropout, 0.5);
  EXPECT_EQ(c.train.seed, 1337u);
  EXPECT_EQ(c.train.epochs, 50);
}

TEST(Config, ErrorsNameTheKey) {
  EXPECT_NE(error_of("data: {path: x}\ntrain: {lrr: 1}").find("unknown config key 'train.lrr'"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntraining: {lr: 1}").find("unknown config section 'training'"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: {lr: fast}").find("'train.lr': expected a number, got 'fast'"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: {epochs: 2.5}").find("'train.epochs': expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\nrecvae: {alternating: maybe}").find("'recvae.alternating'"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: {lr: -0.1}").find("'train.lr': value -0.1 out of range"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: {batch_size: 0}").find("'train.batch_size'"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: {dropout: 1}").find("'train.dropout'"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\nrecvae: {prior_weights: [0.5, 0.5]}").find("'recvae.prior_weights'"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ndist: {backend: gloo}").find("'dist.backend': 'gloo' is not one of"),
            std::string::npos);
  EXPECT_NE(error_of("train: {lr: 0.1}").find("'data.path' is required"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: [1, 2").find("YAML syntax error at line"), std::string::npos);
}

TEST(Config, OverridesApplyAndAreValidated) {
  Config c = parse_config("data: {path: x.h5}\ntrain: {epochs: 3}", "t.yaml",
                          {"train.epochs=7", "recvae.hidden_dim=32", "output.dir=/tmp/r", "recvae.alternating=false"});
  EXPECT_EQ(c.train.epochs, 7);
  EXPECT_EQ(c.section<RecVAEConfig>().hidden_dim, 32);
  EXPECT_EQ(c.output.dir, "/tmp/r");
  EXPECT_FALSE(c.section<RecVAEConfig>().alternating);
  EXPECT_NE(error_of("data: {path: x}", {"train.nope=1"}).find("unknown config key 'train.nope'"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}", {"trainepochs"}).find("expected section.key=value"), std::string::npos);
  EXPECT_NE(error_of("data: {path: x}", {"train.epochs=abc"}).find("'train.epochs'"), std::string::npos);
  // One entry of a mapping-valued key; the mapping's other entries stay.
  Config m = parse_config("data: {path: x}\nmodel: {implicit_slim: {every: 10, lambda: 50, alpha: 1, threshold: 20}}",
                          "t.yaml", {"model.implicit_slim.every=5"});
  EXPECT_EQ(m.model.implicit_slim.every, 5);
  EXPECT_DOUBLE_EQ(m.model.implicit_slim.lambda, 50);
  EXPECT_DOUBLE_EQ(m.model.implicit_slim.threshold, 20);
  EXPECT_EQ(parse_config("data: {path: x}", "t.yaml", {"model.implicit_slim.every=3"}).model.implicit_slim.every, 3);
  EXPECT_NE(error_of("data: {path: x}", {"model.implicit_slim.nope=1"}).find("model.implicit_slim.nope"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}\ntrain: {epochs: 3}", {"train.epochs.x=1"}).find("train.epochs is not a mapping"),
            std::string::npos);
  EXPECT_NE(error_of("data: {path: x}", {"model.implicit_slim.a.b=1"}).find("section.key.entry=value"),
            std::string::npos);
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config("data: {path: d.h5}\ntrain: {lr: 0.001, seed: 9}\nrecvae: {prior_weights: [0.2, 0.7, 0.1]}",
                          "t.yaml");
  Config back = parse_config(c.to_yaml(), "resolved.yaml");
  EXPECT_EQ(back.data.path, "d.h5");
  EXPECT_DOUBLE_EQ(back.train.lr, 0.001);
  EXPECT_EQ(back.train.seed, 9u);
  EXPECT_DOUBLE_EQ(back.section<RecVAEConfig>().prior_weights[0], 0.2);
  EXPECT_EQ(back.to_yaml(), c.to_yaml());
}

TEST(Config, MissingFileIsAnInputError) { EXPECT_THROW(load_config("/nonexistent/config.yaml"), InputError); }

TEST(Config, ShippedConfigsParse) {
  for (const char* name : {"quickstart", "ml-20m", "netflix", "msd", "gowalla"}) {
    const std::string path = std::string(RECVAE_SOURCE_DIR) + "/configs/" + name + ".yaml";
    EXPECT_NO_THROW(load_config(path)) << path;
    for (const char* type : {"multvae", "multdae", "cdae", "autorec", "ease", "slim", "wmf", "pmf"}) {
      const std::string per_model = std::string(RECVAE_SOURCE_DIR) + "/configs/" + type + "/" + name + ".yaml";
      Config c;
      EXPECT_NO_THROW(c = load_config(per_model)) << per_model;
      EXPECT_EQ(c.model.type, type) << per_model;
    }
    const std::string islim = std::string(RECVAE_SOURCE_DIR) + "/configs/implicit_slim/" + name + ".yaml";
    Config with_islim;
    EXPECT_NO_THROW(with_islim = load_config(islim)) << islim;
    EXPECT_GT(with_islim.model.implicit_slim.every, 0) << islim;
    for (const std::string ract : {"", "-recvae"}) {
      const std::string path_ract = std::string(RECVAE_SOURCE_DIR) + "/configs/ract/" + name + ract + ".yaml";
      Config c;
      EXPECT_NO_THROW(c = load_config(path_ract)) << path_ract;
      EXPECT_EQ(c.model.type, "ract") << path_ract;
      EXPECT_EQ(c.section<RaCTConfig>().actor, ract.empty() ? "multvae" : "recvae") << path_ract;
    }
  }
}

// configs/README.md's key tables are the registry's declarations, row for row, in order: a key
// added, renamed or re-documented in code without the docs (or the other way round) fails here.
// `recvae_dist --config-keys` prints the rows to paste.
TEST(Config, DocumentedKeysAreTheDeclaredOnes) {
  std::ifstream in(std::string(RECVAE_SOURCE_DIR) + "/configs/README.md");
  ASSERT_TRUE(in) << "configs/README.md not found";
  std::vector<std::string> documented;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("| `", 0) == 0) documented.push_back(line);
  const std::vector<std::string> declared = config_key_rows(config_section_types());
  const std::set<std::string> doc_set(documented.begin(), documented.end()), decl_set(declared.begin(), declared.end());
  for (const auto& row : declared) EXPECT_TRUE(doc_set.count(row)) << "declared but not in configs/README.md:\n" << row;
  for (const auto& row : documented)
    EXPECT_TRUE(decl_set.count(row)) << "in configs/README.md but not declared:\n" << row;
  EXPECT_EQ(documented, declared) << "same rows, other order (recvae_dist --config-keys prints the order)";
  // Every registered model has a section with at least one key.
  for (const auto& t : model_registry()) {
    bool has_key = false;
    for (const auto& row : declared) has_key = has_key || row.rfind("| `" + t.name + ".", 0) == 0;
    EXPECT_TRUE(has_key) << t.name;
  }
}

TEST(Config, ModelSectionsAreCopiedWithTheConfig) {
  Config a = parse_config("data: {path: x}\nmodel: {type: ease}\nease: {lambda: [1, 2]}", "t.yaml");
  Config b = a;
  b.section<EASEConfig>().lambda = {7};
  EXPECT_EQ(a.section<EASEConfig>().lambda, (std::vector<double>{1, 2}));
  EXPECT_EQ(b.section<EASEConfig>().lambda, (std::vector<double>{7}));
  // The run's sections, and only those, are written back.
  EXPECT_NE(a.to_yaml().find("ease:"), std::string::npos);
  EXPECT_EQ(a.to_yaml().find("recvae:"), std::string::npos);
}

// --help lists every registered model with its one-line summary.
TEST(Config, HelpListsTheRegistry) {
  const auto help = testing::run_command(std::string(RECVAE_DIST_BIN) + " --help");
  EXPECT_EQ(help.exit_code, 0);
  const std::string& out = help.output;
  for (const auto& t : model_registry()) {
    EXPECT_NE(out.find("  " + t.name + " "), std::string::npos) << t.name;
    EXPECT_NE(out.find(t.summary), std::string::npos) << t.summary;
  }
}

}  // namespace
}  // namespace recvae
