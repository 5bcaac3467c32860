#pragma once
// This rank's share of the split file: its training rows (on the host, and on the device when
// dist.device_data is on), its held-out users and the popularity counts of the whole set.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recvae/batch/device_batch.h"
#include "recvae/data/csr.h"
#include "recvae/data/sharding.h"
#include "recvae/eval/evaluator.h"

namespace recvae {

/// What one rank trains and evaluates on.
struct TrainingData {
  std::int64_t items = 0;                     ///< items of the data set
  std::int64_t train_users = 0;               ///< training users of the whole data set
  RowRange range;                             ///< this rank's training users
  CsrMatrix train;                            ///< their rows
  std::unique_ptr<DeviceShard> train_device;  ///< the same on the device (dist.device_data on)
  HeldOutShard validation, test;              ///< this rank's held-out users
  std::vector<float> popularity;              ///< training users per item, over every rank
  std::string fingerprint;                    ///< data_fingerprint of the file
};

}  // namespace recvae
