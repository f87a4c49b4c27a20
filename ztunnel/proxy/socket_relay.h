// Starting relays whose downstream is an accepted socket: what the outbound (15001) and
// inbound passthrough (15006) acceptors share.
#pragma once

#include <memory>

#include "engine/relay.h"
#include "proxy/upstream_policy.h"
#include "proxy/worker_context.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

// Refuses an accepted connection: counted under `reason`, closed with a reset so the client
// learns at once rather than after an orderly end.
void refuse(PodRuntime& pod, UniqueFd fd, FailReason reason);

// A relay from the accepted socket `down` to a new upstream socket made inside the pod and
// connected to `info.target`. `lease` (may be null) is held for the relay's life; `keepalive`
// (may be null) turns TCP keepalive on for the upstream socket.
void startSocketRelay(WorkerContext& context, RelayInfo info, UniqueFd down, std::shared_ptr<void> lease = nullptr,
                      const TcpKeepalive* keepalive = nullptr);

// A relay with the accepted socket as its downstream and `up` as its upstream; the caller
// attaches and starts the upstream. Returns the relay and its downstream socket endpoint.
Relay& newRelay(WorkerContext& context, RelayInfo info);

}  // namespace sluice::ztunnel
