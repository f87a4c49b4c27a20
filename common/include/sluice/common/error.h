// Error values and Result<T>: the control plane's way of reporting failure.
//
// An Error carries an errno-style code (0 when no errno applies) and a message that reads as a
// chain of context, outermost first: "enroll pod default/web: open netns /run/netns/x: No such
// file or directory". Add context with .context(...) at each layer instead of logging and
// re-returning, so the final message says what was being done at every level.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

class Error {
 public:
  Error(int code, std::string message) : code_(code), message_(std::move(message)) {}
  explicit Error(std::string message) : Error(0, std::move(message)) {}

  // errno-style code of the root cause; 0 when the failure is not a system call's.
  int code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns this error with `what` prepended: "what: <previous message>".
  Error context(std::string_view what) && {
    message_.insert(0, std::string(what) + ": ");
    return std::move(*this);
  }

 private:
  int code_;
  std::string message_;
};

// An error for the system call that just failed: "<what>: <strerror(errno)>".
Error errnoError(std::string_view what, int code = errno);

template <typename T>
using Result = std::expected<T, Error>;

// Result of an operation that produces nothing but can fail.
using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected(Error(std::move(message)));
}
inline std::unexpected<Error> failErrno(std::string_view what, int code = errno) {
  return std::unexpected(errnoError(what, code));
}
inline std::unexpected<Error> fail(Error error) { return std::unexpected(std::move(error)); }

// Drops a successful Result's value, keeping a failure (g++ 12's std::expected lacks transform).
template <typename T>
Status discardValue(Result<T> result) {
  if (!result) return std::unexpected(std::move(result.error()));
  return {};
}

// Propagates a failed Result/Status to the caller, adding context; binds nothing.
//   SLUICE_TRY(thing.start(), "start thing");
#define SLUICE_TRY(expr, what)                                          \
  do {                                                                  \
    auto sluice_try_result_ = (expr);                                   \
    if (!sluice_try_result_) {                                          \
      return ::std::unexpected(                                         \
          std::move(sluice_try_result_.error()).context(what));         \
    }                                                                   \
  } while (0)

// Declares `name` bound to the value of a Result, or returns its failure to the caller.
//   SLUICE_TRY_ASSIGN(key, generateKey());   // then use key
#define SLUICE_TRY_ASSIGN(name, expr)                                   \
  auto name##_result_ = (expr);                                         \
  if (!name##_result_) return ::std::unexpected(std::move(name##_result_.error())); \
  auto name = std::move(*name##_result_)

}  // namespace sluice
