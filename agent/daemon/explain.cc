#include "daemon/explain.h"

#include <fmt/format.h>

#include <cstring>

#include "sluice_decision.h"

namespace sluice::agent {
namespace {

bool inCidr(const uint8_t* addr, const CaptureCidr& cidr) {
  uint32_t bits = cidr.prefixBits;
  for (uint32_t i = 0; i < 16 && bits > 0; ++i) {
    uint32_t take = bits >= 8 ? 8 : bits;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - take));
    if ((addr[i] & mask) != (cidr.addr[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

}  // namespace

const char* reasonName(int reason) {
  switch (reason) {
#define SLUICE_COUNTER_NAME(id, name, meaning) \
  case id:                                     \
    return name;
    SLUICE_COUNTERS(SLUICE_COUNTER_NAME)
#undef SLUICE_COUNTER_NAME
    default: return "not_captured";
  }
}

OutboundVerdict explainOutbound(const PodCapturePlan& plan, bool redirectOn, const SocketAddress& to,
                                bool socketHasTunnelMark) {
  if (plan.optedOut) return {-1, false, fmt::format("the pod opted out of capture ({})", plan.optOutReason)};
  if (!redirectOn) return {-1, false, "redirection is off for this pod (not yet acknowledged by the tunnel)"};
  auto bytes = addressBytes(to.ip());
  if (!bytes) return {-1, false, bytes.error().message()};
  const uint8_t* a = bytes->data();
  // The kernel program's own checks (bpf/sluice_decision.h), then its CIDR map, mirrored here.
  int reason = sluice_outbound_reason(&plan.pod, socketHasTunnelMark ? 1 : 0, a, to.port());
  switch (reason) {
    case SLUICE_CTR_BYPASS_MARK:
      return {reason, false, "the socket carries the tunnel's mark: it is the tunnel's own"};
    case SLUICE_CTR_EXCLUDED_LOOPBACK:
      return {reason, false, "loopback destinations are never captured"};
    case SLUICE_CTR_EXCLUDED_SELF:
      return {reason, false, "the destination is the pod's own address"};
    case SLUICE_CTR_EXCLUDED_PORT:
      return {reason, false, fmt::format("port {} is excluded by annotation {}", to.port(), kExcludeOutboundPorts)};
    default:
      break;
  }
  for (const auto& cidr : plan.excludedCidrs) {
    if (inCidr(a, cidr)) {
      return {SLUICE_CTR_EXCLUDED_CIDR, false,
              fmt::format("the destination is in a range excluded by annotation {}", kExcludeOutboundRanges)};
    }
  }
  return {SLUICE_CTR_REDIRECTED, true,
          fmt::format("redirected to the tunnel's outbound listener (port {}) inside the pod",
                      SLUICE_PORT_OUTBOUND)};
}

}  // namespace sluice::agent
