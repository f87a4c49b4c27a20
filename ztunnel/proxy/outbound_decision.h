// What to do with a connection an app opened, decided from its original destination and the
// current configuration snapshot: a pure function (tested by a table); the worker only carries
// the decision out. A target that is a mesh workload carries that workload: the worker then
// reaches it over HBONE (when this node has identities), and its identity is what the
// destination must prove.
#pragma once

#include <optional>
#include <string_view>

#include <string>

#include "proxy/config_snapshot.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

struct OutboundDecision {
  // kHttp: an HTTP port of a service: the tunnel terminates the app's HTTP/1.1 and routes each
  // request (l7/); kHttp2 the same for an HTTP2 or GRPC port (prior-knowledge HTTP/2 both
  // ways). `target` is the VIP and port the app asked for.
  enum class Action { kPassthrough, kService, kRefuse, kHttp, kHttp2 } action;
  SocketAddress target;  // where to connect (kPassthrough, kService)
  std::string reason;    // kRefuse: why (for logs and /config_dump)
  std::string service;   // kService: "namespace/name"
  std::string subset;    // kService: the subset the split chose ("" = none)
  std::string endpointHost;  // kService: the endpoint's host (ServiceEntry::Endpoint::host, outlier detection)
  std::shared_ptr<const ServiceEntry> serviceEntry;  // kService, kHttp, kHttp2: the service
  std::shared_ptr<const WorkloadEntry> workload;  // the target is this mesh workload (else null)
};

// Inputs that make the choice among weighted destinations and endpoints: supplied by the
// caller so the decision stays a pure function (tests pass fixed values).
struct Choice {
  uint64_t random = 0;    // uniformly random
  uint64_t sequence = 0;  // increments per decision (round robin)
  std::optional<uint64_t> hash;                     // consistentHash: the request's key hash
  std::string_view sourceIp;                        // consistentHash useSourceIp (L4 and L7)
  const OutstandingRequests* outstanding = nullptr;  // LEAST_REQUEST: this worker's view
  const EjectionView* ejections = nullptr;           // outlier detection: the node's ejections
  std::string_view avoidHost;  // a retry: pass over this host while another qualifies (Envoy's previous_hosts)
  const WorkloadEntry* client = nullptr;  // the calling workload (locality preference; null: none)
};

// The endpoint of `service` a new connection or request goes to: among those carrying every
// label of `subsetLabels` (null: all), by the load balancer of `subset` (its override, else
// the service's; proxy/load_balancer.h) and the endpoints' weights. Endpoints outlier
// detection ejected are passed over while others remain (and the healthy share is at least
// minHealthPercent: below it, every endpoint takes traffic, Envoy's panic mode); a hash that
// lands on an ejected one picks among the others as RANDOM. With a client and a locality
// preference (localityLbSetting with outlier detection, or the service's trafficDistribution),
// only the closest endpoints that are not ejected take it (proxy/locality.h); consistentHash
// tables ignore locality. Null when none qualifies.
const ServiceEntry::Endpoint* pickEndpoint(const ServiceEntry& service, const std::string& subset,
                                           const std::map<std::string, std::string>* subsetLabels, const Choice& choice);

// Every label of `selector` is in `labels` with the same value (a subset's selection).
bool labelsMatch(const std::map<std::string, std::string>& selector, const std::map<std::string, std::string>& labels);

// The port a service port forwards to (its targetPort), or `port` itself when not listed.
uint16_t targetPortOf(const ServiceEntry& service, uint16_t port);

OutboundDecision decideOutbound(const SocketAddress& originalDestination, const ConfigSnapshot& config,
                                Choice choice = {});

// Ports of the tunnel itself: never a destination, or a connection could loop through it.
bool isTunnelPort(uint16_t port);

}  // namespace sluice::ztunnel
