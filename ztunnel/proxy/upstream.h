// Opening the upstream side of an outbound connection or request: over HBONE (mTLS, HTTP/2
// CONNECT through the worker's pooled link) when the target is a mesh workload and this node
// has identities, else a TCP socket made inside the pod's network namespace. One place, so
// the L4 relay and the L7 proxy reach endpoints the same way and count the same failures.
#pragma once

#include <chrono>
#include <memory>

#include "engine/endpoint.h"
#include "engine/event_loop.h"
#include "proxy/config_snapshot.h"
#include "proxy/fail_reason.h"
#include "proxy/pod_runtime.h"
#include "proxy/upstream_policy.h"
#include "proxy/worker_context.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

struct UpstreamTarget {
  SocketAddress peer;    // the app's address (Forwarded header of the CONNECT)
  SocketAddress target;  // the endpoint
  std::shared_ptr<const WorkloadEntry> workload;  // the endpoint is this mesh workload (else null)
  std::chrono::milliseconds connectTimeout{0};    // a TCP connect's (0: the tunnel's default)
  const TcpKeepalive* keepalive = nullptr;        // TCP keepalive on the socket (not over HBONE)
};

struct OpenedUpstream {
  std::unique_ptr<Endpoint> endpoint;
  std::string protocol;      // "TCP" or "HBONE"
  std::string peerIdentity;  // HBONE: the identity the destination must prove
};

struct UpstreamFailure {
  FailReason reason;
  std::string message;
};

class HboneClient;

// The CONNECT of `stream`, refused unprocessed on `refusedOn`, opened again on another connection
// of the same pool key that takes streams (or a new one), with the pod's current certificate.
// Everything it needs is the connection's (context, pod, key) and the session's (the request).
Result<std::pair<HboneClient*, int32_t>> reopenStream(HboneClient& refusedOn, int32_t stream);

// Starts connecting; the owner hears onEndpointConnected() (asynchronously). Socket endpoints
// send their completions to `handler` under ops from `opBase` (SocketEndpoint::kOpCount).
std::expected<OpenedUpstream, UpstreamFailure> openUpstream(WorkerContext& context, const std::shared_ptr<PodRuntime>& pod,
                                                            const UpstreamTarget& target, IoHandler& handler,
                                                            EndpointOwner& owner, uint8_t opBase);

}  // namespace sluice::ztunnel
