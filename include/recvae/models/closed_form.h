#pragma once
// Base of the closed-form models (EASE, SLIM; Note [Closed-form models] in model.cpp): the
// fitted weights are buffers of module().
#include <torch/torch.h>

#include <memory>
#include <string>

#include "recvae/models/candidate_model.h"

namespace recvae {

/// A candidate model whose fitted weights are buffers of its module.
class ClosedFormModel : public CandidateModel {
 public:
  torch::nn::Module& module() override { return *module_; }
  /// Empties every buffer of module() (Note [Resumable fits]).
  void release_fit() override;

 protected:
  /// `name`: the module's name ("EASE").
  explicit ClosedFormModel(const std::string& name) : module_(std::make_shared<torch::nn::Module>(name)) {}
  std::shared_ptr<torch::nn::Module> module_;  ///< holds the fitted weights as buffers
};

}  // namespace recvae
