#include "recvae/train/checkpoint_schema.h"

#include "recvae/models/model.h"
#include "recvae/train/best_epoch.h"
#include "recvae/train/checkpoint.h"
#include "recvae/util/error.h"

namespace recvae {

// Note [Checkpoint contents]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Replicas are identical (Note [Snapshot check]), so rank 0 writes one checkpoint for all and
// any number of ranks can resume from it. It holds everything the rest of the run depends on:
// the model's replicated module (RecVAE: encoder, encoder_old, decoder); the Adam moments of
// every replicated group, whole whatever dist.optimizer shards (Note [Sharded optimizer]);
// per-user groups gathered from every rank with their Adam moments (Note
// [Per-user parameters] in models/cdae.cpp); the global step count; the best epoch's
// parameters and metrics; the progress of a closed-form fit stopped part-way (Note [Resumable
// fits] in models/model.cpp; the position's epoch is then the candidate, its step 1); and the
// position (epoch, pass, step). The random streams need no state: they are functions of (seed,
// epoch, pass, user) (Note [World-size invariance]). So a resumed run computes exactly what the
// uninterrupted run would have.

void write_checkpoint(torch::serialize::OutputArchive& a, const CheckpointContents& c) {
  a.write("format", c10::IValue(kCheckpointFormat));
  a.write("model_type", c10::IValue(c.model->type()));
  torch::serialize::OutputArchive m;
  c.model->module().save(m);
  a.write("model", m);
  for (const auto& g : c.groups) {
    const std::string key = "group_" + g.name;
    if (g.per_user) a.write(key + "_rows", g.rows[0]);
    a.write(key + "_exp_avg", g.rows[1]);
    a.write(key + "_exp_avg_sq", g.rows[2]);
    a.write(key + "_steps", c10::IValue(g.row_steps));
  }
  a.write("global_step", c10::IValue(c.global_step));
  a.write("epoch", c10::IValue(static_cast<std::int64_t>(c.position.epoch)));
  a.write("schedule_index", c10::IValue(static_cast<std::int64_t>(c.position.schedule_index)));
  a.write("step", c10::IValue(c.position.step));
  for (const auto& [key, value] : c.model->shape()) a.write("shape_" + key, c10::IValue(value));
  if (c.fit_progress.defined()) a.write("fit_progress", c.fit_progress);
  a.write("data_fingerprint", c10::IValue(c.data_fingerprint));
  a.write("config", c10::IValue(c.config_yaml));
  const MetricSums& v = c.best->validation();
  a.write("best_epoch", c10::IValue(static_cast<std::int64_t>(c.best->epoch())));
  a.write("best_ndcg100", c10::IValue(v.ndcg100));
  a.write("best_recall20", c10::IValue(v.recall20));
  a.write("best_recall50", c10::IValue(v.recall50));
  a.write("best_users", c10::IValue(v.users));
  const auto& best = c.best->weights();
  a.write("best_count", c10::IValue(static_cast<std::int64_t>(best.size())));
  for (size_t i = 0; i < best.size(); ++i) a.write("best_" + std::to_string(i), best[i]);
}

void read_checkpoint(torch::serialize::InputArchive& a, CheckpointContents& c, const std::string& path) {
  if (read_int(a, "format") != kCheckpointFormat)
    throw InputError(path + ": checkpoint format " + std::to_string(read_int(a, "format")) +
                     " was written by an older recvae (format " + std::to_string(kCheckpointFormat) +
                     " needed); start a new run directory");
  // Refuse another model type, shape or data set, naming the difference.
  const std::string saved_type = read_string(a, "model_type");
  if (saved_type != c.model->type())
    throw InputError(path + ": checkpoint is of model.type " + saved_type + ", this run's model.type is " +
                     c.model->type());
  for (const auto& [key, now] : c.model->shape()) {
    c10::IValue saved_value;
    if (!a.try_read("shape_" + key, saved_value))
      throw InputError(path + ": checkpoint has no " + key + " (it was made by a " + saved_type +
                       " model of another configuration), this run has " + key + "=" + std::to_string(now));
    const std::int64_t saved = saved_value.toInt();
    if (saved != now)
      throw InputError(path + ": checkpoint has " + key + "=" + std::to_string(saved) + ", this run has " +
                       std::to_string(now));
  }
  const std::string fp = read_string(a, "data_fingerprint");
  if (fp != c.data_fingerprint)
    throw InputError(path + ": checkpoint was made on another data set (" + fp + "), this run's data.path " +
                     c.data_path + " is " + c.data_fingerprint);
  torch::serialize::InputArchive m;
  a.read("model", m);
  {
    torch::NoGradGuard guard;
    c.model->module().load(m);
  }
  for (auto& g : c.groups) {
    const std::string key = "group_" + g.name;
    if (g.per_user) a.read(key + "_rows", g.rows[0]);
    a.read(key + "_exp_avg", g.rows[1]);
    a.read(key + "_exp_avg_sq", g.rows[2]);
    g.row_steps = read_int(a, key + "_steps");
  }
  torch::Tensor progress;
  if (a.try_read("fit_progress", progress)) c.fit_progress = progress;
  c.global_step = read_int(a, "global_step");
  c.position.epoch = static_cast<int>(read_int(a, "epoch"));
  c.position.schedule_index = static_cast<int>(read_int(a, "schedule_index"));
  c.position.step = read_int(a, "step");
  MetricSums v;
  v.ndcg100 = read_double(a, "best_ndcg100");
  v.recall20 = read_double(a, "best_recall20");
  v.recall50 = read_double(a, "best_recall50");
  v.users = read_int(a, "best_users");
  std::vector<torch::Tensor> best(static_cast<size_t>(read_int(a, "best_count")));
  for (size_t i = 0; i < best.size(); ++i) a.read("best_" + std::to_string(i), best[i]);
  c.best->restore(static_cast<int>(read_int(a, "best_epoch")), v, std::move(best));
}

}  // namespace recvae
