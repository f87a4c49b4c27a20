// What to do with a connection an app opened, decided from its original destination and the
// current configuration snapshot: a pure function (tested by a table); the worker only carries
// the decision out. Services, routes and HBONE join this decision in later issues.
#pragma once

#include <string>

#include "proxy/config_snapshot.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

struct OutboundDecision {
  enum class Action { kPassthrough, kRefuse } action;
  SocketAddress target;  // kPassthrough: where to connect
  std::string reason;    // kRefuse: why (for logs and /config_dump)
};

OutboundDecision decideOutbound(const SocketAddress& originalDestination, const ConfigSnapshot& config);

// Ports of the tunnel itself: never a destination, or a connection could loop through it.
bool isTunnelPort(uint16_t port);

}  // namespace sluice::ztunnel
