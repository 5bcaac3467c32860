#include "recvae/linalg/thread_count.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace recvae {

ThreadCount::ThreadCount(int threads) : before_(at::get_num_threads()) {
  if (threads != before_) at::set_num_threads(std::max(1, threads));
}

ThreadCount::~ThreadCount() {
  if (at::get_num_threads() != before_) at::set_num_threads(before_);
}

}  // namespace recvae
