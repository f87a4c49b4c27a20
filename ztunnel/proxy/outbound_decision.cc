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

namespace {

bool labelsMatch(const std::map<std::string, std::string>& selector, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

OutboundDecision toService(const ServiceEntry& service, uint16_t port, Choice choice) {
  uint16_t targetPort = port;
  for (const auto& p : service.ports) {
    if (p.port == port) targetPort = p.targetPort == 0 ? port : p.targetPort;
  }
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
  // 2. The subset's endpoints, by labels.
  std::vector<const ServiceEntry::Endpoint*> candidates;
  uint64_t weightSum = 0;
  for (const auto& e : service.endpoints) {
    if (split != nullptr && !labelsMatch(split->labels, e.labels)) continue;
    candidates.push_back(&e);
    weightSum += std::max<uint32_t>(e.weight, 1);
  }
  std::string subset = split != nullptr ? split->subset : "";
  if (candidates.empty()) {
    return {OutboundDecision::Action::kRefuse, {},
            fmt::format("service {} has no endpoint{}", service.key, subset.empty() ? "" : " in subset " + subset),
            service.key, subset};
  }
  // 3. Load balancing among them (endpoint weights count for both policies).
  uint64_t point = service.loadBalancer == ServiceEntry::LoadBalancer::kRandom ? (choice.random >> 20) % weightSum
                                                                               : choice.sequence % weightSum;
  const ServiceEntry::Endpoint* chosen = candidates.back();
  for (const auto* e : candidates) {
    uint64_t w = std::max<uint32_t>(e->weight, 1);
    if (point < w) {
      chosen = e;
      break;
    }
    point -= w;
  }
  auto target = SocketAddress::fromIp(chosen->address, targetPort);
  if (!target) return {OutboundDecision::Action::kRefuse, {}, target.error().message(), service.key, subset};
  return {OutboundDecision::Action::kService, *target, {}, service.key, subset};
}

}  // namespace

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
    return toService(*it->second, dst.port(), choice);
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
  if (decision.action != OutboundDecision::Action::kRefuse) {
    auto it = config.workloadsByIp.find(decision.target.ip());
    if (it != config.workloadsByIp.end()) decision.workload = it->second;
  }
  return decision;
}

}  // namespace sluice::ztunnel
