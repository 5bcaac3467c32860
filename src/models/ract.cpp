#include "recvae/models/ract.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "recvae/linalg/sparse_ops.h"
#include "recvae/models/multvae.h"
#include "recvae/models/recvae.h"
#include "recvae/util/config.h"
#include "recvae/util/config_text.h"
#include "recvae/util/error.h"
#include "recvae/util/run_dir.h"

namespace recvae {

// Note [RaCT phases]
// ~~~~~~~~~~~~~~~~~~
// The authors' train() (utils/training.py) runs three phases over whole epochs, and so do we:
//  1. ract.actor_epochs of the actor's own maximum-likelihood training (its own passes, groups,
//     learning rate and annealing), unless the actor comes finished from ract.actor_run;
//  2. ract.critic_epochs of critic pre-training: the actor is fixed, the critic regresses the
//     actor's NDCG@100 on the unseen items (mean squared error, Adam at ract.critic_lr);
//  3. ract.ac_epochs in which every step updates both: the critic as in 2, and the actor by
//     Adam at ract.actor_lr on -mean(critic estimate), a second optimiser over the actor's
//     parameters (the authors' ac_train_op, whose Adam state starts fresh in this phase).
// Every training step of 2 and 3 sees what the authors' graph sees: the batch's input with
// dropout (keep 0.5), z sampled (stddev_effect 1), the kept items "seen" and the dropped ones
// "unseen". In 3 both gradients come from one forward pass, as the authors' two train ops run
// in one session call: the critic's from its error with the features held constant, the
// actor's through the critic with the critic's weights held constant. The actor's KL or
// weight penalty is not part of 3 (ac_reg_loss_scaler = 0 in every script).
// Validation selects the best epoch over all phases; the critic epochs leave the actor as it
// was, so their validation NDCG@100 is the actor's before fine-tuning.

// Note [Critic features]
// ~~~~~~~~~~~~~~~~~~~~~~
// The authors standardise the three features with a batch-norm layer (no scale, no offset)
// that collects moving moments only while the actor is trained by maximum likelihood and is
// frozen in the critic and actor-critic phases. We measure the moments instead: a forward-only
// pass over every training user (the same dropout and sampling as training) at the start of
// the first critic epoch, summed over all ranks, so every rank standardises by the same exact
// moments of the final actor, whatever the world size. The moments are buffers of the critic:
// checkpoints and saved models hold them. Epsilon 1e-3 is batch_norm's default.

namespace {

constexpr double kFeatureEps = 1e-3;
constexpr int kNdcgCutoff = 100;

const char* const kFeaturesPhase = "critic_features";
const char* const kCriticPhase = "critic";
const char* const kActorCriticPhase = "actor_critic";
// The critic phases' own random streams: Note [Streams of a second training stage] (batch_plan.h).
constexpr std::uint64_t kCriticStream = 0x7261637443ULL;  // "ractC"

bool is_critic_phase(const std::string& phase) {
  return phase == kFeaturesPhase || phase == kCriticPhase || phase == kActorCriticPhase;
}

std::string shape_text(c10::IntArrayRef sizes) {
  std::ostringstream s;
  s << sizes;
  return s.str();
}

}  // namespace

torch::Tensor unseen_ndcg(const torch::Tensor& logits, const SparseBatch& b, int k) {
  torch::NoGradGuard no_grad;
  const std::int64_t items = logits.size(1);
  const std::int64_t kk = std::min<std::int64_t>(k, items);
  auto seen = b.input != 0;
  auto ranked = logits.detach().clone();
  ranked.index_put_({b.nnz_row.masked_select(seen), b.cols.masked_select(seen)},
                    -std::numeric_limits<float>::infinity());
  auto unseen = torch::zeros_like(ranked);
  auto dropped = seen.logical_not();
  unseen.index_put_({b.nnz_row.masked_select(dropped), b.cols.masked_select(dropped)},
                    torch::ones({1}, unseen.options()));
  auto top = std::get<1>(ranked.topk(kk, 1));  // best first
  auto discount = 1.0 / torch::log2(torch::arange(2, kk + 2, ranked.options()));
  auto dcg = (unseen.gather(1, top) * discount).sum(1);
  auto ideal = torch::cat({torch::zeros({1}, ranked.options()), discount.cumsum(0)});
  auto hits = unseen.sum(1).clamp_max(static_cast<double>(kk)).to(torch::kLong);
  return dcg / ideal.index_select(0, hits).clamp_min(0.1);
}

torch::Tensor critic_features(const torch::Tensor& logits, const SparseBatch& b) {
  auto seen = (b.input != 0).to(b.values.dtype());
  auto n_seen = sum_rows(b.values * seen, b);
  auto n_unseen = sum_rows(b.values * (1 - seen), b);
  return torch::stack({n_seen, n_unseen, -multinomial_log_likelihood(logits, b)}, 1);
}

CriticImpl::CriticImpl() {
  const std::int64_t widths[] = {3, 100, 100, 10, 1};
  for (int i = 0; i < 4; ++i) {
    layers_.push_back(register_module("fc" + std::to_string(i + 1), torch::nn::Linear(widths[i], widths[i + 1])));
    init_xavier_uniform(layers_.back()->weight, widths[i], widths[i + 1]);
    torch::NoGradGuard guard;
    layers_.back()->bias.zero_();
  }
  mean_ = register_buffer("feature_mean", torch::zeros({3}));
  var_ = register_buffer("feature_var", torch::ones({3}));
  measured_ = register_buffer("measured", torch::zeros({1}));
}

torch::Tensor CriticImpl::forward(const torch::Tensor& features, bool frozen) {
  auto h = (features - mean_) / (var_ + kFeatureEps).sqrt();
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& l = layers_[i];
    h = frozen ? torch::linear(h, l->weight.detach(), l->bias.detach()) : l(h);
    h = i + 1 < layers_.size() ? torch::relu(h) : torch::sigmoid(h);
  }
  return h.squeeze(1);
}

void CriticImpl::set_moments(const torch::Tensor& mean, const torch::Tensor& var) {
  torch::NoGradGuard guard;
  mean_.copy_(mean);
  var_.copy_(var);
  measured_.fill_(1);
}

RaCTModel::RaCTModel(const Config& c, const ModelContext& ctx)
    : actor_epochs_(c.section<RaCTConfig>().actor_epochs),
      critic_epochs_(c.section<RaCTConfig>().critic_epochs),
      dropout_(c.train.dropout),
      critic_lr_(c.section<RaCTConfig>().critic_lr),
      actor_lr_(c.section<RaCTConfig>().actor_lr),
      critic_l2_(c.section<RaCTConfig>().critic_l2),
      batch_size_(static_cast<double>(c.train.batch_size)) {
  const RaCTConfig& r = c.section<RaCTConfig>();
  if (r.actor == "recvae")
    actor_ = make_recvae(c, ctx);
  else
    actor_ = make_multvae(c, ctx);
  critic_ = Critic();
  critic_->to(ctx.device);
  // The root names the actor's module "actor" without owning it: the actor model owns it and
  // outlives root_ (declared before it).
  root_ = std::make_shared<torch::nn::Module>("RaCT");
  root_->register_module("actor", std::shared_ptr<torch::nn::Module>(&actor_->module(), [](torch::nn::Module*) {}));
  root_->register_module("critic", critic_.ptr());
  critic_group_ = static_cast<int>(actor_->parameter_groups().size());
  ac_group_ = critic_group_ + 1;
  if (!r.actor_run.empty()) load_actor(r.actor_run, r.actor, ctx.device);
}

void RaCTModel::load_actor(const std::string& dir, const std::string& actor_type, const torch::Device& device) {
  const RunDir run(dir);
  const std::string path = run.best_model();
  if (!std::filesystem::exists(path))
    throw InputError("ract.actor_run: " + path + " not found (give the run directory of a finished " + actor_type +
                     " run with output.save_model: true)");
  const std::string made_by = run.model_type();
  if (!made_by.empty() && made_by != actor_type)
    throw InputError("ract.actor_run: " + dir + " is a " + made_by + " run, but ract.actor is " + actor_type);
  torch::nn::Module& m = actor_->module();
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected;
  for (const auto& p : m.named_parameters()) expected.emplace_back(p.key(), p.value().sizes().vec());
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, device);
    torch::NoGradGuard guard;
    m.load(archive);
  } catch (const c10::Error& e) {
    throw InputError("ract.actor_run: cannot load " + path + " as a " + actor_type +
                     " actor: " + e.what_without_backtrace());
  }
  // Module::load adopts the saved tensors whatever their shapes: compare them with the config's.
  auto loaded = m.named_parameters();
  for (const auto& [name, sizes] : expected) {
    const torch::Tensor* t = loaded.find(name);
    if (t && t->sizes().vec() != sizes)
      throw InputError("ract.actor_run: " + path + " has " + name + " of shape " + shape_text(t->sizes()) +
                       ", this run's " + actor_type + " section gives " + shape_text(sizes) +
                       " (the actor's section must match the run that trained it)");
  }
}

std::vector<ParameterGroup> RaCTModel::parameter_groups() {
  std::vector<ParameterGroup> groups = actor_->parameter_groups();
  std::vector<torch::Tensor> actor_params;
  for (const auto& g : groups) actor_params.insert(actor_params.end(), g.params.begin(), g.params.end());
  groups.push_back({"critic", critic_->parameters(), true, critic_lr_});
  groups.push_back({"actor_ac", actor_params, true, actor_lr_});  // Note [Shared parameter groups] (trainer.cpp)
  return groups;
}

std::vector<PassSpec> RaCTModel::epoch_schedule(int epoch) const {
  // Note [RaCT phases]
  if (epoch < actor_epochs_) return actor_->epoch_schedule(epoch);
  std::vector<PassSpec> passes;
  if (epoch == actor_epochs_)
    passes.push_back({kFeaturesPhase, {}, 1, dropout_, kCriticStream});  // Note [Critic features]
  if (epoch < actor_epochs_ + critic_epochs_)
    passes.push_back({kCriticPhase, {critic_group_}, 0, dropout_, kCriticStream});
  else
    passes.push_back({kActorCriticPhase, {critic_group_, ac_group_}, 0, dropout_, kCriticStream});
  return passes;
}

LossTerms RaCTModel::loss(const SparseBatch& b, const StepContext& ctx) {
  const std::string& phase = ctx.pass->phase;
  if (!is_critic_phase(phase)) return actor_->loss(b, ctx);
  LossTerms out;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(b.values.device());
  if (phase == kFeaturesPhase) {
    auto f = critic_features(actor_->training_logits(b), b).to(torch::kFloat64);
    out.loss = torch::zeros({}, f64);
    out.mll_sum = -f.select(1, 2).sum();
    out.kl_sum = torch::zeros({}, f64);
    out.stats = torch::cat({torch::full({1}, static_cast<double>(b.rows), f64), f.sum(0), f.pow(2).sum(0)});
    return out;
  }
  if (!critic_->measured()) throw std::logic_error("ract: critic used before its feature moments were measured");
  const bool train_actor = phase == kActorCriticPhase;
  torch::Tensor logits, features;
  {
    // In critic pre-training the actor is a constant: no graph through it.
    torch::AutoGradMode mode(train_actor);
    logits = actor_->training_logits(b);
    features = critic_features(logits, b);
  }
  auto target = unseen_ndcg(logits, b, kNdcgCutoff);
  auto estimate = critic_(features.detach());
  out.loss = (estimate - target).pow(2).sum() / ctx.global_batch;
  if (train_actor) out.loss = out.loss - critic_(features, /*frozen=*/true).sum() / ctx.global_batch;
  out.mll_sum = -features.select(1, 2).detach().sum();
  out.kl_sum = torch::zeros({}, out.mll_sum.options());
  auto t = target.to(torch::kFloat64), e = estimate.detach().to(torch::kFloat64);
  out.stats = torch::stack({torch::full({}, static_cast<double>(b.rows), f64), t.sum(), t.pow(2).sum(), e.sum(),
                            e.pow(2).sum(), (t * e).sum()});
  return out;
}

torch::Tensor RaCTModel::regularizer(const StepContext& ctx) {
  if (!is_critic_phase(ctx.pass->phase)) return actor_->regularizer(ctx);
  // The authors' 2 * l2_regularizer(1e-4) / batch_size over every critic variable.
  torch::Tensor sum;
  for (const auto& p : critic_->parameters()) sum = sum.defined() ? sum + p.pow(2).sum() : p.pow(2).sum();
  return critic_l2_ / batch_size_ * sum;
}

bool RaCTModel::after_pass(const PassSpec& pass) {
  return is_critic_phase(pass.phase) ? false : actor_->after_pass(pass);
}

std::vector<std::pair<std::string, double>> RaCTModel::pass_summary(const PassSpec& pass,
                                                                    const std::vector<double>& s) {
  if (!is_critic_phase(pass.phase)) return actor_->pass_summary(pass, s);
  if (s.empty() || s[0] <= 0) return {};
  const double n = s[0];
  if (pass.phase == kFeaturesPhase) {
    auto mean = torch::empty({3}, torch::kFloat64), var = torch::empty({3}, torch::kFloat64);
    for (int i = 0; i < 3; ++i) {
      const double m = s[1 + i] / n;
      mean[i] = m;
      var[i] = std::max(0.0, s[4 + i] / n - m * m);
    }
    critic_->set_moments(mean.to(torch::kFloat32), var.to(torch::kFloat32));
    return {{"mean_seen", s[1] / n}, {"mean_unseen", s[2] / n}, {"mean_nll", s[3] / n}};
  }
  // The paper's diagnostic: how well the critic tracks the true NDCG on the pass's users.
  const double mt = s[1] / n, vt = s[2] / n - mt * mt, me = s[3] / n, ve = s[4] / n - me * me;
  const double cov = s[5] / n - mt * me;
  const double corr = vt > 0 && ve > 0 ? cov / std::sqrt(vt * ve) : 0.0;
  return {{"critic_mse", (s[2] - 2 * s[5] + s[4]) / n}, {"critic_corr", corr}, {"true_ndcg", mt}, {"critic_mean", me}};
}

std::unique_ptr<RaCTModel> make_ract(const Config& c, const ModelContext& ctx) {
  return std::make_unique<RaCTModel>(c, ctx);
}

void RaCTConfig::declare(KeyTable& t) {
  t.text("actor", actor, {"multvae", "recvae"},
         "the actor: `multvae` (the paper) or `recvae`; its section (`multvae:` / `recvae:`) gives its shape and loss");
  t.text("actor_run", actor_run, {},
         "a finished run directory of the actor's type: its `best_model.pt` is the starting actor, and the actor "
         "section of its `config.yaml` replaces this config's (rank 0 prints each value that changes)");
  t.num("actor_epochs", actor_epochs, 0, 1e6,
        "maximum-likelihood epochs of the actor in this run (its own schedule, `train.lr`), when there is no "
        "`actor_run`; one of the two is required");
  t.num("critic_epochs", critic_epochs, 0, 1e6,
        "critic pre-training epochs with the actor fixed; the first starts with a forward-only pass that measures "
        "the critic's feature moments");
  t.num("ac_epochs", ac_epochs, 0, 1e6,
        "actor-critic epochs: every step trains the critic and moves the actor to raise the critic's estimate");
  t.num("critic_lr", critic_lr, 0.0, 1e3, "Adam learning rate of the critic", /*open_lo=*/true);
  t.num("actor_lr", actor_lr, 0.0, 1e3,
        "Adam learning rate of the actor in the actor-critic epochs (a fresh optimiser)", /*open_lo=*/true);
  t.num("critic_l2", critic_l2, 0.0, 1e6,
        "critic penalty critic_l2 * |theta|^2 / train.batch_size per step (the authors' 2 * l2_regularizer(1e-4) / "
        "batch)");
}

// Note [The actor run's section]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// An actor from ract.actor_run is that run's model: its widths are fixed by the archive, and the
// rest of its section (annealing, gamma ...) is how it was trained. So the actor's section is
// taken whole from the run's config.yaml, replacing what this config gives, and each value that
// changes is printed by rank 0. The alternative, a config that must repeat the actor's widths,
// made every fine-tuning of a tuned actor (a sweep's winner) a hand-copied pair of --set flags,
// and the one that forgot them was refused only once the data were loaded. A key of the actor
// section that the run's config.yaml lacks (written by an older build) keeps this config's
// value; the shape check when the archive loads (load_actor) still refuses a mismatch. A run
// directory without config.yaml, or of another model type, is left to load_actor to refuse.
std::vector<std::string> RaCTConfig::adopt(Config& c) {
  if (actor_run.empty()) return {};
  const std::string file = RunDir(actor_run).config();
  if (!std::filesystem::exists(file)) return {};
  YAML::Node run;
  try {
    run = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw InputError("ract.actor_run: cannot read " + file + ": " + e.what());
  }
  const YAML::Node type = run.IsMap() && run["model"].IsMap() ? run["model"]["type"] : YAML::Node();
  if (!type || !type.IsScalar() || type.Scalar() != actor) return {};
  const YAML::Node theirs = run[actor];
  if (!theirs.IsMap())
    throw InputError("ract.actor_run: " + file + " is a " + actor + " run without a '" + actor + ":' section");
  ConfigSection* mine = c.sections.find(actor);
  if (!mine) return {};
  KeyTable table(actor, file);
  mine->declare(table);
  std::vector<std::string> notes;
  for (const auto& k : table.keys()) {
    const YAML::Node value = theirs[k.name.substr(actor.size() + 1)];
    if (!value) continue;
    const YAML::Node before = k.write();
    k.read(value, k.name);
    const YAML::Node after = k.write();
    if (YAML::Dump(after) != YAML::Dump(before))
      notes.push_back("ract.actor_run: " + k.name + " is " + shown_value(after) + ", the actor run's (" + file +
                      "), not this config's " + shown_value(before));
  }
  return notes;
}

void RaCTConfig::validate(const Config& c, const std::string& source) const {
  const int phases = actor_epochs + critic_epochs + ac_epochs;
  if (actor_run.empty() && actor_epochs == 0)
    throw InputError(source + ": ract needs an actor: set ract.actor_run (a finished " + actor +
                     " run directory) or ract.actor_epochs > 0");
  if (!actor_run.empty() && actor_epochs > 0)
    throw InputError(source + ": set either ract.actor_run or ract.actor_epochs, not both");
  if (c.train.epochs >= 0 && c.train.epochs != phases)
    throw InputError(source + ": config key 'train.epochs' is " + std::to_string(c.train.epochs) +
                     " but ract.actor_epochs + ract.critic_epochs + ract.ac_epochs is " + std::to_string(phases) +
                     " (leave train.epochs out for ract)");
  if (c.train.dropout == 0)
    throw InputError(source + ": ract needs train.dropout > 0 (the dropped items are the critic's unseen items)");
}

TrainDefaults RaCTConfig::train_defaults(const Config& c) const {
  TrainDefaults d;  // RaCT pre-trains its actor with the actor's own defaults
  if (const ConfigSection* a = c.sections.find(actor)) d = a->train_defaults(c);
  d.epochs = actor_epochs + critic_epochs + ac_epochs;
  return d;
}

std::vector<std::pair<std::string, std::int64_t>> RaCTModel::shape() const {
  auto s = actor_->shape();
  s.emplace_back("ract.actor_is_recvae", actor_->type() == "recvae" ? 1 : 0);
  return s;
}

}  // namespace recvae
