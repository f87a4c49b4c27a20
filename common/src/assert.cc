#include "sluice/common/assert.h"

#include <cstdio>
#include <cstdlib>

namespace sluice::detail {

void checkFailed(const char* condition, const char* file, int line, const char* message) {
  // stderr directly, not the logger: the logger itself may be what is broken.
  std::fprintf(stderr, "sluice: invariant violated at %s:%d: %s (%s)\n", file, line, message,
               condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace sluice::detail
