// The Notes that govern every model interface (models/model.h and the three training styles).
#include "recvae/models/model.h"

#include "recvae/models/closed_form.h"

namespace recvae {

// Note [Model interface]
// ~~~~~~~~~~~~~~~~~~~~~~
// The trainer knows models only through interfaces. Every model has the core of model.h: its
// type, its module (the weights that are saved, broadcast from rank 0 and compared across
// ranks), the scores of held-out users from their fold-in rows for the shared evaluation, and
// the numbers that fix its shapes, which a checkpoint must match. How it is trained is one of
// three interfaces, and its factory's return type says which (AnyModel, any_model.h); the
// trainer drives each with a driver of its own (train/step_driver.h, candidate_driver.h,
// solve_driver.h) and never infers the style:
//  * StepModel (step_model.h), trained by passes of gradient steps. It states its parameter
//    groups: each gets one flat gradient buffer, one all-reduce per step and one Adam optimiser
//    (Note [Gradient sync]); a group that is not replicated holds per-user rows that stay on
//    their rank (Note [Per-user parameters] in cdae.cpp). It states the schedule of each epoch:
//    which groups each pass steps and with which input dropout (RecVAE alternates encoder and
//    decoder passes; the others have one joint pass; RaCT's phases change with the epoch, and a
//    pass that steps no group only measures). Its loss of the local part of a global batch is
//    already divided by the global batch size, so that summing gradients across ranks gives the
//    single-process gradient (Note [World-size invariance]); a penalty on the replicated weights
//    is separate (Note [Regularisers after the all-reduce] in step_driver.cpp). Hooks run at
//    the end of every pass (RecVAE's encoder_old refresh) and at the start of every epoch
//    (ImplicitSLIM), and sums of its own are added up over a pass and all ranks and handed back
//    (pass_summary: RaCT's feature moments and critic error). An ActorModel adds the training
//    logits that RaCT's critic reads.
//  * CandidateModel (candidate_model.h), fitted in closed form as a list of candidates (Note
//    [Closed-form models]).
//  * EpochSolvedModel (epoch_solved_model.h), solved epoch by epoch without gradients (ALS: a
//    user step and an item step; Note [Distributed ALS] in wmf.cpp); the solve is timed as the
//    epoch's training.
// Everything else (sharding, batches and their randomness, gradient sync, optimisers,
// evaluation, best-epoch selection, checkpoints, signals, the run directory) is the trainer's
// and is the same for every model.

// Note [Closed-form models]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// EASE and SLIM are not trained by steps: they are solved from G = X^T X (Note [Distributed
// Gram] in linalg/gram.cpp). They have no parameter groups and no passes; instead they name a
// number of candidate fits (one per lambda or (l1, l2) pair), and the trainer fits and
// evaluates each as it would an epoch (one line per candidate in metrics.jsonl, the best on
// validation NDCG@100 is tested and saved). A fit is a collective: the Gram reduction goes
// through the communicator, then every rank solves the same reduced G, so the replicas agree
// without a broadcast. The model keeps one fit; the trainer fits the best candidate again when
// it was not the last.

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

void ClosedFormModel::release_fit() {
  torch::NoGradGuard guard;
  for (auto& b : module_->buffers()) b.set_(torch::zeros({0}, b.options()));
}

}  // namespace recvae
