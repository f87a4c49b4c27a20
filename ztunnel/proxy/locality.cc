#include "proxy/locality.h"

namespace sluice::ztunnel {

bool localityMatches(std::string_view pattern, const Locality& locality) {
  const std::string* parts[] = {&locality.region, &locality.zone, &locality.subzone};
  for (const std::string* part : parts) {
    size_t slash = pattern.find('/');
    std::string_view wanted = pattern.substr(0, slash);
    if (wanted == "*") return true;
    if (wanted != *part) return false;
    if (slash == std::string_view::npos) return true;  // nothing below is asked for
    pattern.remove_prefix(slash + 1);
  }
  return pattern.empty() || pattern == "*";
}

namespace {

// A label's value at `p`: the well-known topology labels read its locality.
const std::string* labelAt(const Placement& p, const std::string& label) {
  if (label == "topology.kubernetes.io/region") return &p.locality->region;
  if (label == "topology.kubernetes.io/zone") return &p.locality->zone;
  if (label == "topology.istio.io/subzone") return &p.locality->subzone;
  if (p.labels == nullptr) return nullptr;
  auto it = p.labels->find(label);
  return it == p.labels->end() ? nullptr : &it->second;
}

bool sameRegion(const Placement& a, const Placement& b) { return a.locality->region == b.locality->region; }
bool sameZone(const Placement& a, const Placement& b) { return sameRegion(a, b) && a.locality->zone == b.locality->zone; }

}  // namespace

int localityRank(const LocalityLbPolicy& policy, bool policyInForce, TrafficDistribution distribution,
                 const Placement& client, const Placement& endpoint) {
  if (policyInForce) {
    if (!policy.failoverPriority.empty()) {
      int matched = 0;
      for (const auto& label : policy.failoverPriority) {
        const std::string* mine = labelAt(client, label);
        const std::string* theirs = labelAt(endpoint, label);
        if (mine == nullptr || theirs == nullptr || *mine != *theirs) break;
        ++matched;
      }
      return static_cast<int>(policy.failoverPriority.size()) - matched;
    }
    if (sameZone(client, endpoint)) return client.locality->subzone == endpoint.locality->subzone ? 0 : 1;
    if (sameRegion(client, endpoint)) return 2;
    auto to = policy.failover.find(client.locality->region);
    return to != policy.failover.end() && to->second == endpoint.locality->region ? 3 : 4;
  }
  switch (distribution) {
    case TrafficDistribution::kAny:
      return 0;
    case TrafficDistribution::kPreferSameNode:
      if (*client.node == *endpoint.node) return 0;
      return sameZone(client, endpoint) ? 1 : sameRegion(client, endpoint) ? 2 : 3;
    case TrafficDistribution::kPreferSameZone:
      return sameZone(client, endpoint) ? 0 : sameRegion(client, endpoint) ? 1 : 2;
  }
  return 0;
}

const std::string* distributeTarget(const LocalityLbPolicy& policy, const Locality& locality, uint64_t random) {
  for (const auto& rule : policy.distribute) {
    if (!localityMatches(rule.from, locality)) continue;
    uint64_t total = 0;
    for (const auto& [target, weight] : rule.to) total += weight;
    if (total == 0) return nullptr;
    uint64_t point = random % total;
    for (const auto& [target, weight] : rule.to) {
      if (point < weight) return &target;
      point -= weight;
    }
  }
  return nullptr;
}

}  // namespace sluice::ztunnel
