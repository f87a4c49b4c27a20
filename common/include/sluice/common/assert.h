// Invariant checks. A failed check means the program's own logic is broken (never bad input:
// bad input is an Error value). It logs the condition and location, then aborts so a core dump
// shows the state, because continuing past a broken invariant risks corrupting traffic.
//
// SLUICE_CHECK  runs in every build.
// SLUICE_ASSERT runs only in debug builds (NDEBUG unset); use it on hot paths.
#pragma once

namespace sluice::detail {
[[noreturn]] void checkFailed(const char* condition, const char* file, int line, const char* message);
}  // namespace sluice::detail

#define SLUICE_CHECK(cond, message)                                           \
  do {                                                                        \
    if (!(cond)) [[unlikely]] {                                               \
      ::sluice::detail::checkFailed(#cond, __FILE__, __LINE__, (message));    \
    }                                                                         \
  } while (0)

#ifdef NDEBUG
#define SLUICE_ASSERT(cond, message) \
  do {                               \
    (void)sizeof(cond);              \
  } while (0)
#else
#define SLUICE_ASSERT(cond, message) SLUICE_CHECK(cond, message)
#endif
