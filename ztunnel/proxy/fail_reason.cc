#include "proxy/fail_reason.h"

#include <cerrno>

namespace sluice::ztunnel {

FailReason connectFailure(int err) {
  switch (err) {
    case ECONNREFUSED: return FailReason::kConnectRefused;
    case ETIMEDOUT: case ECANCELED: return FailReason::kConnectTimeout;
    case ENETUNREACH: case EHOSTUNREACH: return FailReason::kUnreachable;
    default: return FailReason::kConnectError;
  }
}

}  // namespace sluice::ztunnel
