// Error types are header-only (include/recvae/error.h); this translation unit anchors the library.
#include "recvae/error.h"

namespace recvae {
static_assert(kExitInputError != kExitRuntimeError, "exit codes must differ");
}  // namespace recvae
