// Why a connection failed: one list, expanded into the enum, the metric label and the
// /config_dump field, so the names cannot drift from the code (Envoy's stats macros).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace sluice::ztunnel {

// X(enumerator, "label", "meaning")
#define SLUICE_FAIL_REASONS(X)                                                                   \
  X(kNoOriginalDestination, "no_original_destination", "outbound accept without a capture record") \
  X(kPolicyRefused, "policy_refused", "the outbound decision refused it (e.g. a loop to the tunnel)") \
  X(kConnectRefused, "connect_refused", "the destination answered RST")                           \
  X(kConnectTimeout, "connect_timeout", "no answer within the connect timeout")                   \
  X(kUnreachable, "unreachable", "no route / host unreachable")                                   \
  X(kConnectError, "connect_error", "any other connect failure")                                  \
  X(kSocketError, "socket_error", "the tunnel could not create or set up its socket")            \
  X(kNoCertificate, "no_certificate", "the pod's certificate has not arrived (HBONE needs it)")   \
  X(kHandshake, "handshake", "HBONE TLS failed, timed out, or the peer proved the wrong identity") \
  X(kHboneRefused, "hbone_refused", "HBONE: the destination answered CONNECT with a non-200 status") \
  X(kHboneProtocol, "hbone_protocol", "HBONE: HTTP/2 error or the connection broke under the stream") \
  X(kMalformed, "malformed", "inbound HBONE request refused with 400")                           \
  X(kDenied, "denied", "AuthorizationPolicy denied it")                                          \
  X(kPlaintextRefused, "plaintext_refused", "plaintext inbound under STRICT PeerAuthentication")  \
  X(kSourceLimit, "source_limit", "the source address holds as many connections as it may")      \
  X(kOverflow, "overflow", "the destination's connectionPool.tcp.maxConnections are open (circuit breaking)")

enum class FailReason {
#define SLUICE_FAIL_REASON_ENUM(name, label, meaning) name,
  SLUICE_FAIL_REASONS(SLUICE_FAIL_REASON_ENUM)
#undef SLUICE_FAIL_REASON_ENUM
  kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(FailReason::kCount)> kFailReasonNames{
#define SLUICE_FAIL_REASON_NAME(name, label, meaning) label,
    SLUICE_FAIL_REASONS(SLUICE_FAIL_REASON_NAME)
#undef SLUICE_FAIL_REASON_NAME
};

inline const char* failReasonName(FailReason reason) {
  auto i = static_cast<size_t>(reason);
  return i < kFailReasonNames.size() ? kFailReasonNames[i].data() : "unknown";
}

// The reason a failed connect() (an errno) is counted under.
FailReason connectFailure(int err);

}  // namespace sluice::ztunnel
