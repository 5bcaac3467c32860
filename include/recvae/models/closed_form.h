#pragma once
// Base of the closed-form models (EASE, SLIM; Note [Closed-form models] in model.cpp): no
// parameter groups, no passes, no training loss; the fitted weights are buffers of module().
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "recvae/models/model.h"

namespace recvae {

/// A model fitted by Model::fit instead of trained by passes.
class ClosedFormModel : public Model {
 public:
  torch::nn::Module& module() override { return *module_; }
  std::vector<ParameterGroup> parameter_groups() override { return {}; }
  std::vector<PassSpec> epoch_schedule(int) const override { return {}; }
  /// Throws: a closed-form model has no training loss.
  LossTerms loss(const SparseBatch& batch, const StepContext& ctx) override;
  /// Empties every buffer of module() (Note [Resumable fits]).
  void release_fit() override;

 protected:
  /// `name`: the module's name ("EASE").
  explicit ClosedFormModel(const std::string& name) : module_(std::make_shared<torch::nn::Module>(name)) {}
  std::shared_ptr<torch::nn::Module> module_;  ///< holds the fitted weights as buffers
};

}  // namespace recvae
