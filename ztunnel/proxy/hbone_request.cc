#include "proxy/hbone_request.h"

#include <fmt/format.h>

namespace sluice::ztunnel {

SocketAddress unmapped(const SocketAddress& a) {
  std::string ip = a.ip();
  if (a.family() == AF_INET6 && ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos) {
    if (auto v4 = SocketAddress::fromIp(ip.substr(7), a.port())) return *v4;
  }
  return a;
}

std::string forwardedFor(const SocketAddress& client) {
  SocketAddress a = unmapped(client);
  return a.family() == AF_INET6 ? fmt::format("for=\"[{}]\"", a.ip()) : fmt::format("for={}", a.ip());
}

std::string traceparent(uint64_t traceHigh, uint64_t traceLow, uint64_t span) {
  if (traceHigh == 0 && traceLow == 0) traceLow = 1;  // an all-zero trace id is invalid too
  return fmt::format("00-{:016x}{:016x}-{:016x}-01", traceHigh, traceLow, span | 1);
}

std::string peerIdentityVerdict(const PeerCheck& c) {
  if (c.identity.empty()) return "its certificate names no single SPIFFE identity";
  if (c.role == PeerRole::kClientOfServer) {
    return c.identity == c.expected ? "" : fmt::format("it proved {}, but {} was expected", c.identity, c.expected);
  }
  std::string prefix = "spiffe://" + c.trustDomain + "/";
  return c.identity.rfind(prefix, 0) == 0 ? "" : fmt::format("{} is not of trust domain {}", c.identity, c.trustDomain);
}

}  // namespace sluice::ztunnel
