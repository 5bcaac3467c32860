#include "recvae/models/model.h"

#include <stdexcept>

#include "recvae/models/autorec.h"
#include "recvae/models/cdae.h"
#include "recvae/models/closed_form.h"
#include "recvae/models/ease.h"
#include "recvae/models/slim.h"
#include "recvae/models/wmf.h"
#include "recvae/models/multdae.h"
#include "recvae/models/multvae.h"
#include "recvae/models/ract.h"
#include "recvae/models/recvae.h"
#include "recvae/util/config.h"
#include "recvae/util/error.h"

namespace recvae {

// Note [Model interface]
// ~~~~~~~~~~~~~~~~~~~~~~
// The trainer knows models only through Model. A model states:
//  * its parameter groups: each gets one flat gradient buffer, one all-reduce per step and one
//    Adam optimiser (Note [Gradient sync]); a group that is not replicated holds per-user rows
//    that stay on their rank (Note [Per-user parameters] in cdae.cpp);
//  * its schedule of each epoch: which groups each pass steps and with which input dropout
//    (RecVAE alternates encoder and decoder passes; the others have one joint pass; RaCT's
//    phases change with the epoch, and a pass that steps no group only measures);
//  * the loss of the local part of a global batch, already divided by the global batch size,
//    so that summing gradients across ranks gives the single-process gradient (Note
//    [World-size invariance]); a penalty on the replicated weights is separate (Note
//    [Regularisers after the all-reduce] in trainer.cpp);
//  * the scores of held-out users from their fold-in rows, for the shared evaluation;
//  * a hook at the end of every pass (RecVAE's encoder_old refresh), sums of its own that the
//    trainer adds up over a pass and all ranks and hands back (pass_summary: RaCT's feature
//    moments and critic error), and the numbers that fix its shapes, which a checkpoint must
//    match.
// A closed-form model (EASE) has no groups and no passes: it reports fit_candidates() and the
// trainer fits and evaluates each candidate in turn (Note [Closed-form models]).
// Everything else (sharding, batches and their randomness, gradient sync, optimisers,
// evaluation, best-epoch selection, checkpoints, signals, the run directory) is the trainer's
// and is the same for every model.

LossTerms ClosedFormModel::loss(const SparseBatch&, const StepContext&) {
  throw std::logic_error("model.type " + type() + " is fitted in closed form; it has no training loss");
}

void ClosedFormModel::release_fit() {
  torch::NoGradGuard guard;
  for (auto& b : module_->buffers()) b.set_(torch::zeros({0}, b.options()));
}

std::string Model::fit(int, const FitContext&) {
  throw std::logic_error("model.type " + type() + " is trained by passes, not fitted in closed form");
}

std::string Model::fit_name(int) const {
  throw std::logic_error("model.type " + type() + " is trained by passes, not fitted in closed form");
}

torch::Tensor Model::training_logits(const SparseBatch&) {
  throw std::logic_error("model.type " + type() + " cannot be a RaCT actor (it has no multinomial likelihood)");
}

// Note [Closed-form models]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// EASE is not trained by steps: it is solved from G = X^T X (Note [Distributed Gram] in
// gram.cpp). It has no parameter groups and no passes; instead it names a number of candidate
// fits (one per lambda), and the trainer fits and evaluates each as it would an epoch (one line
// per candidate in metrics.jsonl, the best on validation NDCG@100 is tested and saved). The fit
// is a collective: the Gram reduction goes through the communicator, then every rank solves the
// same reduced G, so the replicas agree without a broadcast. The model keeps one fit; the trainer
// fits the best candidate again when it was not the last.

// Note [Resumable fits]
// ~~~~~~~~~~~~~~~~~~~~~
// A stop request (SIGTERM, SIGUSR1: what Slurm sends) is honoured by a closed-form run in two
// places. Between candidates, the ranks agree on it collectively after each evaluation; the
// checkpoint then records how many candidates were evaluated and the best so far, but no fitted
// weights (release_fit: EASE's B is items^2, and the trainer fits the best candidate again at
// the end anyway). Within a fit, a model whose fit is a long series of independent pieces (SLIM's
// item columns, hours on MSD) polls FitContext::should_stop between pieces; each rank stops
// taking new pieces, the ranks agree, gather what is done, and the model exposes it as
// fit_progress(). The trainer checkpoints that at the candidate's position (step 1: "inside the
// fit"), and the resumed fit of the same candidate, at any world size, solves only the pieces
// that are missing. Because every piece is solved from the same reduced G, the resumed result
// equals an uninterrupted fit. EASE's fit is one factorisation and cannot stop part-way.

std::unique_ptr<Model> make_model(const Config& c, const ModelContext& ctx) {
  const std::string& t = c.model.type;
  const double dropout = c.train.dropout;
  if (t == "recvae") return std::make_unique<RecVAEModel>(c.recvae, dropout, ctx, c.model.implicit_slim);
  if (t == "multvae") return std::make_unique<MultVAEModel>(c.multvae, dropout, ctx);
  if (t == "multdae") return std::make_unique<MultDAEModel>(c.multdae, dropout, ctx);
  if (t == "cdae") return std::make_unique<CDAEModel>(c.cdae, dropout, ctx);
  if (t == "autorec") return std::make_unique<AutoRecModel>(c.autorec, dropout, ctx);
  if (t == "ract") return std::make_unique<RaCTModel>(c, ctx);
  if (t == "ease") return std::make_unique<EASEModel>(c.ease, ctx);
  if (t == "slim") return std::make_unique<SLIMModel>(c.slim, ctx);
  if (t == "wmf") return std::make_unique<ALSModel>("wmf", wmf_objective(c.wmf), ctx);
  if (t == "pmf") return std::make_unique<ALSModel>("pmf", pmf_objective(c.pmf), ctx);
  std::string list;
  for (const auto& name : model_types()) list += (list.empty() ? "" : ", ") + name;
  throw InputError("unknown model.type '" + t + "' (valid: " + list + ")");
}

}  // namespace recvae
