#include "proxy/outbound_decision.h"

#include <fmt/format.h>

#include "sluice_capture.h"

namespace sluice::ztunnel {

bool isTunnelPort(uint16_t port) {
  switch (port) {
    case 15000: case SLUICE_PORT_OUTBOUND: case SLUICE_PORT_INBOUND_PLAINTEXT: case SLUICE_PORT_HBONE:
    case 15020: case 15021:
      return true;
    default:
      return false;
  }
}

bool labelsMatch(const std::map<std::string, std::string>& selector, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

namespace {

// Keeps, of `candidates`, the closest to `client` by locality (proxy/locality.h) among which
// one is not ejected; all stay when every one is ejected (nothing is closer than another then).
template <typename Ejected>
void keepClosest(const LbPolicy& policy, bool policyInForce, TrafficDistribution distribution, const WorkloadEntry& client,
                 std::vector<const ServiceEntry::Endpoint*>& candidates, const Ejected& isEjected, uint64_t random) {
  auto placement = [](const ServiceEntry::Endpoint& e) { return Placement{&e.node, &e.locality, &e.labels}; };
  if (policyInForce && !policy.locality.distribute.empty()) {
    // splitmix64's multiplier: a draw of its own, not the one the endpoint pick uses.
    const std::string* target = distributeTarget(policy.locality, client.locality, random * 0x9e3779b97f4a7c15ULL);
    if (target == nullptr) return;
    std::vector<const ServiceEntry::Endpoint*> there;
    bool anyHealthy = false;
    for (const auto* e : candidates) {
      if (!localityMatches(*target, e->locality)) continue;
      there.push_back(e);
      anyHealthy = anyHealthy || !isEjected(*e);
    }
    if (anyHealthy) candidates.swap(there);
    return;
  }
  auto rank = [&](const ServiceEntry::Endpoint& e) {
    return localityRank(policy.locality, policyInForce, distribution, client.placement(), placement(e));
  };
  int best = -1;
  for (const auto* e : candidates) {
    if (!isEjected(*e) && (best < 0 || rank(*e) < best)) best = rank(*e);
  }
  if (best < 0) return;
  std::erase_if(candidates, [&](const ServiceEntry::Endpoint* e) { return rank(*e) != best; });
}

OutboundDecision toService(const ServiceEntry& service, uint16_t port, Choice choice) {
  // 1. The weighted split (per connection at L4): a point in [0, total) picks a destination.
  const ServiceEntry::Split* split = nullptr;
  int total = 0;
  for (const auto& s : service.splits) total += s.weight;
  if (!service.splits.empty()) {
    if (total <= 0) {
      split = &service.splits.front();
    } else {
      int point = static_cast<int>(choice.random % static_cast<uint64_t>(total));
      for (const auto& s : service.splits) {
        if (point < s.weight) {
          split = &s;
          break;
        }
        point -= s.weight;
      }
    }
  }
  // 2. An endpoint of the subset.
  std::string subset = split != nullptr ? split->subset : "";
  const ServiceEntry::Endpoint* chosen = pickEndpoint(service, subset, split != nullptr ? &split->labels : nullptr, choice);
  if (chosen == nullptr) {
    return {OutboundDecision::Action::kRefuse, {},
            fmt::format("service {} has no endpoint{}", service.key, subset.empty() ? "" : " in subset " + subset),
            service.key, subset};
  }
  auto target = SocketAddress::fromIp(chosen->address, targetPortOf(service, port));
  if (!target) return {OutboundDecision::Action::kRefuse, {}, target.error().message(), service.key, subset};
  OutboundDecision decision{OutboundDecision::Action::kService, *target, {}, service.key, subset};
  decision.endpointHost = chosen->host;
  return decision;
}

}  // namespace

uint16_t targetPortOf(const ServiceEntry& service, uint16_t port) {
  const ServiceEntry::Port* p = service.findPort(port);
  return p != nullptr && p->targetPort != 0 ? p->targetPort : port;
}

const ServiceEntry::Endpoint* pickEndpoint(const ServiceEntry& service, const std::string& subset,
                                           const std::map<std::string, std::string>* subsetLabels, const Choice& choice) {
  const LbPolicy& policy = service.loadBalancerFor(subset);
  const OutlierPolicy& outlier = service.outlierFor(subset);
  const EjectionView* ejections = outlier.enabled ? choice.ejections : nullptr;
  auto isEjected = [&](const ServiceEntry::Endpoint& e) {
    return (!choice.avoidHost.empty() && e.host == choice.avoidHost) ||
           (ejections != nullptr && ejections->ejected(service.key, e.host));
  };
  if (policy.kind == LbPolicy::Kind::kConsistentHash) {
    std::optional<uint64_t> hash = choice.hash;
    if (!hash && policy.key == LbPolicy::HashKey::kSourceIp && !choice.sourceIp.empty()) hash = hashKey(choice.sourceIp);
    auto index = service.hashTables.find(subset);
    if (hash && index != service.hashTables.end()) {
      int picked = index->second.table->pick(*hash);
      if (picked >= 0) {
        const auto& endpoint = service.endpoints[index->second.endpoints[static_cast<size_t>(picked)]];
        if (!isEjected(endpoint)) return &endpoint;
      }
    }
    // No key in the request (or its endpoint is ejected): as RANDOM (Envoy does the same).
  }
  std::vector<const ServiceEntry::Endpoint*> candidates;
  for (const auto& e : service.endpoints) {
    if (subsetLabels == nullptr || labelsMatch(*subsetLabels, e.labels)) candidates.push_back(&e);
  }
  if (candidates.empty()) return nullptr;
  bool localityInForce = localityLbInForce(policy.locality, outlier.enabled);
  if (choice.client != nullptr && (localityInForce || service.trafficDistribution != TrafficDistribution::kAny)) {
    keepClosest(policy, localityInForce, service.trafficDistribution, *choice.client, candidates, isEjected, choice.random);
  }
  if (ejections != nullptr || !choice.avoidHost.empty()) {
    // Only when something can be passed over: the others, unless none is left or too few
    // (minHealthPercent) are.
    std::vector<const ServiceEntry::Endpoint*> healthy;
    for (const auto* e : candidates) {
      if (!isEjected(*e)) healthy.push_back(e);
    }
    if (!healthy.empty() && !ignoreEjections(outlier, healthy.size(), candidates.size())) candidates.swap(healthy);
  }
  uint64_t weightSum = 0;
  for (const auto* e : candidates) weightSum += std::max<uint32_t>(e->weight, 1);
  // The endpoint at `point` of the weights laid end to end.
  auto at = [&](uint64_t point) {
    point %= weightSum;
    for (const auto* e : candidates) {
      uint64_t w = std::max<uint32_t>(e->weight, 1);
      if (point < w) return e;
      point -= w;
    }
    return candidates.back();
  };
  switch (policy.kind) {
    case LbPolicy::Kind::kRoundRobin: return at(choice.sequence);
    case LbPolicy::Kind::kLeastRequest: {
      // Two weighted random picks (from the two halves of `random`); fewer outstanding
      // requests per unit of weight wins, the first on a tie.
      const auto* a = at(choice.random >> 32);
      const auto* b = at(choice.random & 0xffffffffULL);
      if (choice.outstanding == nullptr || a == b) return a;
      auto load = [&](const ServiceEntry::Endpoint* e) {
        auto it = choice.outstanding->find(e->address);
        double active = it == choice.outstanding->end() ? 0 : it->second;
        return (active + 1) / std::max<uint32_t>(e->weight, 1);
      };
      return load(b) < load(a) ? b : a;
    }
    case LbPolicy::Kind::kRandom:
    case LbPolicy::Kind::kConsistentHash:
      return at(choice.random >> 20);
  }
  return candidates.front();
}

namespace {
OutboundDecision decideTarget(const SocketAddress& dst, const ConfigSnapshot& config, Choice choice) {
  std::string ip = dst.ip();
  bool loopback = ip.rfind("127.", 0) == 0 || ip == "::1" || ip.rfind("::ffff:127.", 0) == 0;
  if (loopback) {
    // Capture never redirects loopback; a record saying so means something is looping.
    return {OutboundDecision::Action::kRefuse, {}, fmt::format("destination {} is loopback", dst.toString())};
  }
  if (isTunnelPort(dst.port())) {
    return {OutboundDecision::Action::kRefuse, {},
            fmt::format("destination port {} is one of the tunnel's own ports", dst.port())};
  }
  if (dst.port() == 0) return {OutboundDecision::Action::kRefuse, {}, "destination port 0"};
  if (auto it = config.servicesByVip.find(dst.toString()); it != config.servicesByVip.end()) {
    const ServiceEntry::Port* port = it->second->findPort(dst.port());
    if (port != nullptr && port->protocol != ServiceEntry::Protocol::kTcp) {
      auto action = port->protocol == ServiceEntry::Protocol::kHttp ? OutboundDecision::Action::kHttp
                                                                    : OutboundDecision::Action::kHttp2;
      OutboundDecision http{action, dst, {}, it->second->key};
      http.serviceEntry = it->second;
      return http;
    }
    OutboundDecision decision = toService(*it->second, dst.port(), choice);
    if (decision.action == OutboundDecision::Action::kService) decision.serviceEntry = it->second;
    return decision;
  }
  if (config.outboundPolicy == ConfigSnapshot::OutboundPolicy::kRegistryOnly) {
    return {OutboundDecision::Action::kRefuse, {},
            fmt::format("{} is not a known service and the outbound policy is REGISTRY_ONLY", dst.toString())};
  }
  return {OutboundDecision::Action::kPassthrough, dst, {}};
}

}  // namespace

OutboundDecision decideOutbound(const SocketAddress& dst, const ConfigSnapshot& config, Choice choice) {
  OutboundDecision decision = decideTarget(dst, config, choice);
  if (decision.action == OutboundDecision::Action::kPassthrough || decision.action == OutboundDecision::Action::kService) {
    auto it = config.workloadsByIp.find(decision.target.ip());
    if (it != config.workloadsByIp.end()) decision.workload = it->second;
  }
  return decision;
}

}  // namespace sluice::ztunnel
