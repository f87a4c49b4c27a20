#include "proxy/inbound_decision.h"

#include <fmt/format.h>

#include <algorithm>

#include "proxy/outbound_decision.h"

namespace sluice::ztunnel {

int InboundDecision::httpStatus() const {
  switch (verdict) {
    case Verdict::kAllow: return 200;
    case Verdict::kMalformed: return 400;
    case Verdict::kPlaintextRefused:
    case Verdict::kDenied: return 401;
  }
  return 400;
}

InboundDecision decideInbound(const InboundRequest& request, const InboundPod& pod, const ConfigSnapshot& config) {
  using V = InboundDecision::Verdict;
  InboundDecision d;
  auto target = SocketAddress::parse(request.target);
  if (!target) return {V::kMalformed, {}, {}, fmt::format("target '{}' is not ip:port", request.target)};
  std::string ip = target->ip();
  if (ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos) ip = ip.substr(7);
  auto ours = SocketAddress::fromIp(ip, target->port());
  if (!ours) return {V::kMalformed, {}, {}, ours.error().message()};
  bool isPod = std::find(pod.addresses.begin(), pod.addresses.end(), ip) != pod.addresses.end();
  if (!isPod) {
    // Plaintext captured on an address the configuration does not list for the pod (IPv6
    // link-local or SLAAC: the kernel steered it, so it is the pod's) is refused too: fail closed.
    return {V::kMalformed, {}, {}, fmt::format("target {} is not one of the pod's known addresses", request.target)};
  }
  if (target->port() == 0 || isTunnelPort(target->port())) {
    return {V::kMalformed, {}, {}, fmt::format("target port {} is not an app port", target->port())};
  }
  d.target = *ours;
  // The controller's view when it lists the pod (fresher: labels can change), else the agent's.
  const WorkloadEntry* workload = nullptr;
  if (auto it = config.workloadsByIp.find(ip); it != config.workloadsByIp.end()) workload = it->second.get();
  const std::map<std::string, std::string>& labels = workload != nullptr ? workload->labels : pod.labels;
  if (!request.hbone) {
    MtlsDecision mtls = effectiveMtlsMode(config.peerAuthentications, pod.ns, labels, target->port());
    if (mtls.mode == MtlsMode::kStrict) {
      return {V::kPlaintextRefused, {}, mtls.policy, fmt::format("plaintext refused: STRICT mTLS ({})", mtls.policy)};
    }
  }
  std::vector<const config::v1::AuthorizationPolicy*> all;
  for (const auto& p : config.authorizationPolicies) all.push_back(p.get());
  ConnectionAttributes attributes;
  const std::string prefix = "spiffe://";
  if (request.peerIdentity.rfind(prefix, 0) == 0) attributes.principal = request.peerIdentity.substr(prefix.size());
  attributes.sourceIp = request.sourceIp;
  attributes.destinationPort = target->port();
  AuthzResult authz = authorize(applicablePolicies(all, pod.ns, labels), attributes);
  d.policy = authz.policy;
  if (!authz.allowed) {
    d.verdict = V::kDenied;
    d.reason = authz.reason;
  }
  return d;
}

}  // namespace sluice::ztunnel
