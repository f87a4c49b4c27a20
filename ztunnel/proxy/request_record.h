// One HTTP request as the tunnel reports it when it ends, whichever protocol carried it: the
// pod's Istio request metrics (proxy/request_metrics.h) and, when enabled, one access-log line
// (JSON, Envoy's field names). The HTTP/1.1 and HTTP/2 proxies fill it as the request goes
// (begin, destination, response head, bytes, flags) and end it exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "l7/http_head.h"
#include "proxy/circuit_breaker.h"
#include "proxy/config_snapshot.h"
#include "proxy/http_request_routing.h"
#include "proxy/pod_runtime.h"
#include "proxy/request_metrics.h"

namespace spdlog {
class logger;
}

namespace sluice::ztunnel {

struct RequestRecord {
  bool active = false;  // begun and not yet ended
  std::chrono::steady_clock::time_point start;
  std::chrono::system_clock::time_point startWall;
  RequestLabels labels;
  uint64_t requestBytes = 0, responseBytes = 0;  // header and body bytes as forwarded
  std::string method, path, authority, requestId, route, upstreamHost, protocol;
  // While it is in flight it counts as one outstanding request to its endpoint in the worker's
  // view (LEAST_REQUEST); ending it gives that back.
  OutstandingRequests* outstanding = nullptr;
  // Its destination's circuit-breaker counts while it holds them (empty when the destination
  // limits nothing): in flight until it ends, waiting for an upstream connection, its retry.
  BreakerSlot inFlight, pending, retry;
  l7::RetryInFlight retryInFlight;  // its retry, counted in flight for the retry budget's floor
};

// The labels of `pod` as a source: from `workload`, its entry in the configuration
// (podWorkload), else the pod's own name, namespace and identity.
WorkloadLabels sourceWorkloadLabels(const WorkloadEntry* workload, const PodRuntime& pod, const std::string& trustDomain);

// A request whose head just arrived (`protocol`: "HTTP/1.1" or "HTTP/2").
RequestRecord beginRequest(const WorkloadLabels& source, const l7::HttpHead& head, bool grpc, std::string protocol,
                           std::chrono::steady_clock::time_point now);
// What routing decided: the destination service, workload and endpoint, the route's name; a
// local answer's status and response flag.
void recordRouting(RequestRecord& record, const HttpRouting& routing, const std::string& trustDomain);
// The request was sent to `upstreamHost` (recordRouting): count it outstanding there.
void markOutstanding(RequestRecord& record, OutstandingRequests& outstanding);
// The request no longer counts against its endpoint (before a retry names another one).
void releaseOutstanding(RequestRecord& r);
// Reports it (metrics, access log) and ends its outstanding count and gives back its
// circuit-breaker counts, unless already ended.
void endRequest(PodRuntime& pod, RequestRecord& record, std::chrono::steady_clock::time_point now);

// The access log: one JSON object per line per request; null turns it off (the default). The
// logger should be asynchronous and drop on overflow: workers never wait for it.
void setAccessLog(std::shared_ptr<spdlog::logger> logger);
std::string accessLogLine(const RequestRecord& record, const PodRuntime& pod, double durationMs);

}  // namespace sluice::ztunnel
