#include "recvae/train/stop_agreement.h"

#include <cstdint>

#include "recvae/dist/comm.h"
#include "recvae/train/stop_signal.h"

namespace recvae {

bool stop_agreed(Communicator& comm) {
  std::int64_t stop = stop_requested() ? 1 : 0;
  comm.allreduce_max_host(&stop, 1);
  return stop != 0;
}

}  // namespace recvae
