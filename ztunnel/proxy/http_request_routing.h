// The routing decision for one HTTP request on a service port, whatever protocol carried it
// (HTTP/1.1 in http_outbound.h, HTTP/2 and gRPC in http2_outbound.h): the VirtualService's
// route, its weighted target, the endpoint, or a local answer (404 NR, 503 NC/UH, redirect,
// direct response). One place, so both protocols route the same request the same way.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "l7/http_head.h"
#include "l7/http_route.h"
#include "proxy/config_snapshot.h"
#include "proxy/outbound_decision.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

// An answer the tunnel gives itself, with Istio's response flag (empty: none, the route asked
// for it: redirect, directResponse).
struct LocalAnswer {
  int status = 0;
  std::string flag;
  std::string body;
  std::vector<l7::HttpHeader> extra;
  std::optional<int> grpcStatus;  // gRPC requests: this grpc-status, not the one `status` maps to
};

struct HttpRouting {
  std::optional<LocalAnswer> local;  // set: answer with it and send nothing upstream
  const l7::HttpRouteRule* rule = nullptr;  // the matched route, also for its local answers (lives in the snapshot)
  SocketAddress endpoint;                   // the chosen endpoint (its target port)
  std::string endpointHost, subset;         // the endpoint's host and subset (outlier detection)
  const l7::RouteTarget* target = nullptr;  // the weighted destination chosen (lives in the snapshot)
  std::shared_ptr<const WorkloadEntry> workload;  // the endpoint is this mesh workload (else null)
  // The service the request is for: the route's destination, or the one the app called when
  // answered locally (null when even that is no longer known).
  std::shared_ptr<const ServiceEntry> service;
  // Fields the response gets besides the route's edits (a consistentHash cookie to set).
  std::vector<l7::HttpHeader> responseAdd;
  // The route's fault delay for this request (0: none): the request (or the fault's local
  // answer) goes on only after it (response flag DI).
  std::chrono::milliseconds delay{0};
  std::chrono::milliseconds timeout{0};  // the route's timeout (0: none)
  // The route's mirrors that chose this request (by their percentage): where the copies go.
  struct Mirror {
    std::string destination;                  // the mirror's service key (its host when unknown)
    std::optional<SocketAddress> endpoint;    // none: the mirror has no endpoint (the copy is dropped)
    std::shared_ptr<const WorkloadEntry> workload;  // the endpoint is this mesh workload (else null)
    std::chrono::milliseconds connectTimeout{0};    // its destination's tcp.connectTimeout (0: default)
  };
  std::vector<Mirror> mirrors;
  // Its body is kept while it fits the replay bound: a retry, or a mirror's copy, sends it again.
  bool keepsBody() const { return (rule != nullptr && rule->retries.attempts > 0) || !mirrors.empty(); }
};

struct HttpSource {
  uint16_t servicePort = 0;
  std::string_view ns;
  const std::map<std::string, std::string>* labels = nullptr;  // null: unknown
  std::string_view ip;  // the app's address (consistentHash useSourceIp)
};

// Routes `request` sent to `service` (the VIP and port the app connected to); applies the
// route's rewrite to `request` when it goes upstream. Pure: the choices come from `choice`
// (its hash is computed here from the request when the destination hashes).
HttpRouting routeHttpRequest(const ConfigSnapshot& config, const SocketAddress& service, const HttpSource& source,
                             l7::HttpHead& request, Choice choice, uint64_t targetRandom);

// Where a copy of a request to `servicePort` goes for the route's `mirror`: an endpoint of
// the mirror destination (its subset), chosen by its load balancer with `choice`.
HttpRouting::Mirror routeMirror(const ConfigSnapshot& config, const l7::HttpRouteRule::Mirror& mirror, uint16_t servicePort,
                                const Choice& choice);

// A retry of `routing`'s request: another endpoint of the same destination and subset, other
// than the one just tried when the subset has another (Envoy's previous_hosts predicate).
// False when the destination has no endpoint left.
bool rerouteForRetry(const ConfigSnapshot& config, HttpRouting& routing, Choice choice);

// What every routed request carries upstream: the route's request header edits, then a W3C
// traceparent and an x-request-id when the app sent none (`random` makes the ids).
void decorateRequest(const l7::HttpRouteRule& rule, l7::HttpHead& request, std::mt19937_64& random);

// The configuration's workload for the pod with these addresses (null: none known).
const WorkloadEntry* podWorkload(const ConfigSnapshot& config, const std::vector<std::string>& addresses);

}  // namespace sluice::ztunnel
