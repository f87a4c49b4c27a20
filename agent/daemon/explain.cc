#include "daemon/explain.h"

#include <fmt/format.h>

#include <cstring>

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

bool isLoopback(const uint8_t* a) {
  static const uint8_t mappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a, mappedPrefix, 12) == 0) return a[12] == 127;
  for (int i = 0; i < 15; ++i)
    if (a[i] != 0) return false;
  return a[15] == 1;
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
  if (socketHasTunnelMark) {
    return {SLUICE_CTR_BYPASS_MARK, false, "the socket carries the tunnel's mark: it is the tunnel's own"};
  }
  auto bytes = addressBytes(to.ip());
  if (!bytes) return {-1, false, bytes.error().message()};
  const uint8_t* a = bytes->data();
  if (isLoopback(a)) return {SLUICE_CTR_EXCLUDED_LOOPBACK, false, "loopback destinations are never captured"};
  for (uint32_t i = 0; i < plan.pod.addr_count && i < SLUICE_MAX_POD_ADDRS; ++i) {
    if (std::memcmp(plan.pod.addrs[i], a, 16) == 0) {
      return {SLUICE_CTR_EXCLUDED_SELF, false, "the destination is the pod's own address"};
    }
  }
  for (uint16_t port : plan.pod.exclude_outbound_ports) {
    if (port != 0 && port == to.port()) {
      return {SLUICE_CTR_EXCLUDED_PORT, false,
              fmt::format("port {} is excluded by annotation {}", port, kExcludeOutboundPorts)};
    }
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
