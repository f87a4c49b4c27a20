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

OutboundDecision decideOutbound(const SocketAddress& dst, const ConfigSnapshot& config) {
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
  if (config.outboundPolicy == ConfigSnapshot::OutboundPolicy::kRegistryOnly) {
    return {OutboundDecision::Action::kRefuse, {},
            fmt::format("{} is not a known service and the outbound policy is REGISTRY_ONLY", dst.toString())};
  }
  return {OutboundDecision::Action::kPassthrough, dst, {}};
}

}  // namespace sluice::ztunnel
