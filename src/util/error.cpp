#include "recvae/util/error.h"

#include <cstdio>

namespace recvae {

static_assert(kExitInputError != kExitRuntimeError, "exit codes must differ");

int run_guarded(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return kExitInputError;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: failure: %s\n", program, e.what());
    return kExitRuntimeError;
  }
}

}  // namespace recvae
