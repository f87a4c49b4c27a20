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
inline constexpr const char* kHttpVip = "10.96.0.11";
// L7: Service web-http (port "http" 80 -> 8081 on the web pods, so routed per request), its
// subsets v1/v2, and a VirtualService sending `x-canary: always` to v2 and splitting the rest
// v1/v2 per request.
std::string httpCanaryYaml(int v1, int v2);
// Writes `yaml` to `dir/file` atomically (the controller never sees half a file).
Status writeConfigFile(const std::string& dir, const std::string& file, const std::string& yaml);

}  // namespace sluice::sim
