#include "fixtures.h"

#include <map>

#include "../common/test_util.h"
#include "recvae/models/registry.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/data/synth.h"
#include "recvae/util/error.h"
#include "recvae/models/recvae.h"

namespace recvae::testing {

std::string make_synthetic_split(const std::string& dir, std::int64_t users, std::int64_t items, std::int64_t heldout,
                                 std::uint64_t seed) {
  SynthOptions o = synth_preset("tiny");
  o.users = users;
  o.items = items;
  o.heldout_users = heldout;
  o.mean_items = 30;
  o.min_users_per_item = 3;
  o.seed = seed;
  const std::string path = dir + "/synthetic.h5";
  write_split_file(path, apply_protocol(generate_synthetic(o, false), synth_protocol(o), false));
  return path;
}

const std::string& shared_synthetic_split(const std::string& name, std::int64_t users, std::int64_t items,
                                          std::int64_t heldout, std::uint64_t seed) {
  static std::map<std::string, std::string> made;
  auto it = made.find(name);
  if (it == made.end())
    it = made.emplace(name, make_synthetic_split(scratch_dir(name), users, items, heldout, seed)).first;
  return it->second;
}

Config small_config(const std::string& data_path, const std::string& dir) {
  Config c;
  c.data.path = data_path;
  c.section<RecVAEConfig>().hidden_dim = 64;
  c.section<RecVAEConfig>().latent_dim = 16;
  c.train.batch_size = 100;
  c.train.epochs = 2;
  c.train.threads = 1;
  c.output.dir = dir + "/run";
  c.output.progress_seconds = 0;
  c.eval.batch_size = 128;
  c.dist.device = "cpu";
  return c;
}

RecVAE& recvae_net(Trainer& trainer) { return dynamic_cast<RecVAEModel&>(trainer.model()).net(); }
PassSpec encoder_pass(int pass, double dropout) { return {"encoder", {0}, pass, dropout}; }
PassSpec decoder_pass(int pass) { return {"decoder", {1}, pass, 0.0}; }
PassSpec joint_pass(int pass, double dropout) { return {"joint", {0, 1}, pass, dropout}; }

std::string config_error(const std::string& yaml) {
  try {
    parse_config(yaml, "t.yaml");
  } catch (const InputError& e) {
    return e.what();
  }
  return std::string();
}

}  // namespace recvae::testing
