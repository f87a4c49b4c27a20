// The controller configuration of the canary scenario shared by the demo and the tests: two
// pods web-v1 and web-v2 (namespace shop) behind Service web with a VIP, a DestinationRule
// with subsets v1 and v2, and a VirtualService splitting connections between them.
#pragma once

#include <string>

#include "simcluster/cluster.h"

namespace sluice::sim {

inline constexpr const char* kCanaryVip = "10.96.0.10";

// Workloads (from the pods' real addresses), the Service and the DestinationRule.
std::string canaryClusterYaml(const Cluster& cluster);
// The VirtualService: weights for v1 and v2.
std::string canaryRouteYaml(int v1, int v2);
// L7 services in front of the same web pods, routed per request because of their port's name.
struct L7Service {
  const char* name;
  const char* vip;
  const char* portName;
  int targetPort;  // where the web pods' app for this protocol listens
};
inline constexpr L7Service kHttpService{"web-http", "10.96.0.11", "http", 8081};
inline constexpr L7Service kGrpcService{"web-grpc", "10.96.0.12", "grpc", 8082};
// The service (port 80 -> targetPort on the web pods), its subsets v1/v2, and a VirtualService
// sending `x-canary: always` to v2 and splitting the rest v1/v2 per request.
std::string l7CanaryYaml(const L7Service& service, int v1, int v2);
// Outlier detection: Service `service` in front of the web pods, its requests spread over both
// (round robin), a DestinationRule ejecting an endpoint after 5 consecutive 5xx for 30 s.
inline constexpr L7Service kFlakyService{"web-flaky", "10.96.0.13", "http", 8083};
std::string outlierDetectionYaml(const L7Service& service);
// Circuit breaking: Service `service` in front of the web pods' HTTP apps (kHttpService's
// port), a DestinationRule allowing `maxRequests` requests in flight (http2MaxRequests).
inline constexpr L7Service kLimitedService{"web-limited", "10.96.0.14", "http", kHttpService.targetPort};
std::string connectionPoolYaml(const L7Service& service, int maxRequests);
// Local rate limiting: a LocalRateLimit on `service` with a bucket of `tokens`, refilled
// whole every minute.
std::string localRateLimitYaml(const L7Service& service, int tokens);
// Mirroring: Service `service` (annotated mirror-safe) in front of the web pods' HTTP apps,
// every request routed to v1 and `percent`% of them mirrored to v2.
inline constexpr L7Service kMirroredService{"web-mirrored", "10.96.0.15", "http", kHttpService.targetPort};
std::string mirrorYaml(const L7Service& service, int percent);
// Locality: Service `service` in front of the pods labelled app: nearby (one per node), a
// DestinationRule with outlierDetection (Istio's default locality failover is then in force).
inline constexpr L7Service kNearbyService{"nearby", "10.96.0.16", "http", 8084};
std::string localityYaml(const L7Service& service);
// Writes `yaml` to `dir/file` atomically (the controller never sees half a file).
Status writeConfigFile(const std::string& dir, const std::string& file, const std::string& yaml);

}  // namespace sluice::sim
