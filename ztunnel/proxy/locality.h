// Locality-aware load balancing: which endpoints of a destination a client's request or
// connection prefers, by where the client and the endpoints run. Pure functions (table tests).
//
//   DestinationRule localityLbSetting (Istio; in force only with outlierDetection, as in Istio,
//   and on by default then): endpoints are ranked into priorities and the closest priority
//   that has an endpoint outlier detection did not eject takes everything (strict failover,
//   as Istio's ztunnel; Envoy would spill over gradually as a priority's health drops).
//     default         0 same region/zone/subzone, 1 same zone, 2 same region, 3 the region
//                     `failover` names for the client's region, 4 anywhere else
//     failoverPriority  labels, most important first: the longer the run of leading labels
//                     whose values equal the client's, the closer (topology.kubernetes.io/
//                     region|zone and topology.istio.io/subzone read the localities)
//     distribute      from the client's locality, a weighted choice of target localities
//   Kubernetes Service trafficDistribution (when no localityLbSetting is in force):
//     PreferClose, PreferSameZone   0 same zone, 1 same region, 2 anywhere
//     PreferSameNode                0 same node, 1 same zone, 2 same region, 3 anywhere
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::ztunnel {

struct Locality {
  std::string region, zone, subzone;
  bool operator==(const Locality&) const = default;
};

// Where a workload runs, as ranking reads it.
struct Placement {
  const std::string* node = nullptr;
  const Locality* locality = nullptr;
  const std::map<std::string, std::string>* labels = nullptr;
};

struct LocalityLbPolicy {
  // Not turned off (localityLbSetting.enabled: false). Istio's default is on: a destination
  // with outlier detection prefers close endpoints even without a localityLbSetting.
  bool enabled = true;
  struct Distribute {
    std::string from;
    std::vector<std::pair<std::string, uint32_t>> to;  // locality pattern, weight (total 100)
  };
  std::vector<Distribute> distribute;
  std::map<std::string, std::string> failover;  // client region -> region to fail over to first
  std::vector<std::string> failoverPriority;
};

enum class TrafficDistribution { kAny, kPreferSameZone, kPreferSameNode };

// Whether a destination's localityLbSetting is in force: not turned off, and the destination
// has outlier detection (Istio's rule: without it nothing would ever fail over).
inline bool localityLbInForce(const LocalityLbPolicy& policy, bool outlierDetection) {
  return policy.enabled && outlierDetection;
}

// Whether `locality` is under `pattern`: "region", "region/zone", "region/zone/subzone", a
// last part "*" matching anything below what precedes it ("*" alone: everywhere).
bool localityMatches(std::string_view pattern, const Locality& locality);

// The priority of an endpoint placed at `endpoint` for a client at `client` under `policy`
// (enabled) or, when it is not in force, `distribution`: 0 is the closest. Every endpoint is
// 0 when neither applies.
int localityRank(const LocalityLbPolicy& policy, bool policyInForce, TrafficDistribution distribution,
                 const Placement& client, const Placement& endpoint);

// localityLbSetting.distribute: the target locality pattern for a client at `locality`
// (`random` uniform), or null when no rule's `from` matches it.
const std::string* distributeTarget(const LocalityLbPolicy& policy, const Locality& locality, uint64_t random);

}  // namespace sluice::ztunnel
