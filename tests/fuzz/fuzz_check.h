// A fuzz target's invariant: when it does not hold, abort, so libFuzzer reports the input that
// broke it (an assert would vanish with NDEBUG).
#pragma once

#include <cstdlib>

namespace sluice::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace sluice::fuzz
