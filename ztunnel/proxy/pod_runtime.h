// A pod as the tunnel holds it while the pod is enrolled: identity, its network namespace (the
// tunnel's sockets for this pod are created inside it), and live counters. Shared by the pod's
// listeners and connections on a worker and by the admin thread, which only reads counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

enum class Direction { kOutbound = 0, kInbound = 1 };

// Why a connection failed; the metric label and the /config_dump field.
enum class FailReason {
  kNoOriginalDestination = 0,  // outbound accept without a capture record
  kPolicyRefused,              // the outbound decision refused it (e.g. a loop to the tunnel)
  kConnectRefused,             // the destination answered RST
  kConnectTimeout,             // no answer within the connect timeout
  kUnreachable,                // no route / host unreachable
  kConnectError,               // any other connect failure
  kSocketError,                // the tunnel could not create its socket
  kNoCertificate,              // the pod's certificate has not arrived (HBONE needs it)
  kHandshake,                  // HBONE TLS failed or the peer proved the wrong identity
  kHboneRefused,               // HBONE: the destination answered CONNECT with a non-200 status
  kHboneProtocol,              // HBONE: HTTP/2 error or the connection broke under the stream
  kMalformed,                  // inbound HBONE request refused with 400
  kDenied,                     // AuthorizationPolicy denied it
  kPlaintextRefused,           // plaintext inbound under STRICT PeerAuthentication
  kCount
};
const char* failReasonName(FailReason reason);

struct PodCounters {
  std::array<std::atomic<uint64_t>, 2> opened{};      // by Direction
  std::array<std::atomic<uint64_t>, 2> closed{};
  std::array<std::atomic<uint64_t>, 2> bytesFromClient{};  // client -> server
  std::array<std::atomic<uint64_t>, 2> bytesToClient{};    // server -> client
  std::array<std::atomic<uint64_t>, static_cast<size_t>(FailReason::kCount)> failed{};
  std::atomic<int64_t> active{0};
};

struct PodRuntime {
  std::string uid, name, ns, serviceAccount;
  std::string identity;  // spiffe://<trust-domain>/ns/<ns>/sa/<serviceAccount>; "" when the node has no credentials
  std::vector<std::string> addresses;
  UniqueFd netns;
  uint64_t netnsCookie = 0;
  int worker = 0;  // every listener and connection of the pod lives on this worker
  PodCounters counters;
  std::atomic<bool> draining{false};
  std::string key() const { return ns + "/" + name; }
};

}  // namespace sluice::ztunnel
