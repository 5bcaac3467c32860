#pragma once
// A built model together with how it is trained: one of the three training styles, fixed by
// the type its factory returns (models/registry.h), never inferred at run time.
#include <memory>
#include <utility>
#include <variant>

#include "recvae/models/candidate_model.h"
#include "recvae/models/epoch_solved_model.h"
#include "recvae/models/step_model.h"

namespace recvae {

/// Owns a model of one training style.
class AnyModel {
 public:
  /// A model trained by passes of steps.
  AnyModel(std::unique_ptr<StepModel> m) : model_(std::move(m)) {}  // NOLINT: implicit on purpose
  /// A model fitted as candidates.
  AnyModel(std::unique_ptr<CandidateModel> m) : model_(std::move(m)) {}  // NOLINT
  /// A model solved epoch by epoch.
  AnyModel(std::unique_ptr<EpochSolvedModel> m) : model_(std::move(m)) {}  // NOLINT

  /// The core every style shares.
  Model& core() const {
    return std::visit([](const auto& p) -> Model& { return *p; }, model_);
  }
  /// Calls `f` with the model as its style's interface (StepModel&, CandidateModel& or
  /// EpochSolvedModel&); every style must be handled.
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit([&](const auto& p) -> decltype(auto) { return f(*p); }, model_);
  }

 private:
  std::variant<std::unique_ptr<StepModel>, std::unique_ptr<CandidateModel>, std::unique_ptr<EpochSolvedModel>> model_;
};

}  // namespace recvae
