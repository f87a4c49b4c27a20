// What to do with a connection an app opened, decided from its original destination and the
// current configuration snapshot: a pure function (tested by a table); the worker only carries
// the decision out. A target that is a mesh workload carries that workload: the worker then
// reaches it over HBONE (when this node has identities), and its identity is what the
// destination must prove.
#pragma once

#include <string>

#include "proxy/config_snapshot.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

struct OutboundDecision {
  enum class Action { kPassthrough, kService, kRefuse } action;
  SocketAddress target;  // where to connect (kPassthrough, kService)
  std::string reason;    // kRefuse: why (for logs and /config_dump)
  std::string service;   // kService: "namespace/name"
  std::string subset;    // kService: the subset the split chose ("" = none)
  std::shared_ptr<const WorkloadEntry> workload;  // the target is this mesh workload (else null)
};

// Inputs that make the choice among weighted destinations and endpoints: supplied by the
// caller so the decision stays a pure function (tests pass fixed values).
struct Choice {
  uint64_t random = 0;    // uniformly random
  uint64_t sequence = 0;  // increments per decision (round robin)
};

OutboundDecision decideOutbound(const SocketAddress& originalDestination, const ConfigSnapshot& config,
                                Choice choice = {});

// Ports of the tunnel itself: never a destination, or a connection could loop through it.
bool isTunnelPort(uint16_t port);

}  // namespace sluice::ztunnel
