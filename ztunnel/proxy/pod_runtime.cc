#include "proxy/pod_runtime.h"

namespace sluice::ztunnel {

const char* failReasonName(FailReason reason) {
  switch (reason) {
    case FailReason::kNoOriginalDestination: return "no_original_destination";
    case FailReason::kPolicyRefused: return "policy_refused";
    case FailReason::kConnectRefused: return "connect_refused";
    case FailReason::kConnectTimeout: return "connect_timeout";
    case FailReason::kUnreachable: return "unreachable";
    case FailReason::kConnectError: return "connect_error";
    case FailReason::kSocketError: return "socket_error";
    case FailReason::kNoCertificate: return "no_certificate";
    case FailReason::kHandshake: return "handshake";
    case FailReason::kHboneRefused: return "hbone_refused";
    case FailReason::kHboneProtocol: return "hbone_protocol";
    case FailReason::kMalformed: return "malformed";
    case FailReason::kDenied: return "denied";
    case FailReason::kPlaintextRefused: return "plaintext_refused";
    default: return "unknown";
  }
}

}  // namespace sluice::ztunnel
