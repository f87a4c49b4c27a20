#include "proxy/hbone_request.h"

#include "sluice/common/pki.h"

#include <fmt/format.h>

#include "sluice/common/hex.h"
#include "sluice/common/k8s_names.h"

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
  std::string out;
  out.reserve(55);
  out += "00-";
  appendHex(out, traceHigh, 16);
  appendHex(out, traceLow, 16);
  out += '-';
  appendHex(out, span | 1, 16);
  out += "-01";
  return out;
}

std::string randomTraceparent(std::mt19937_64& random) {
  uint64_t traceHigh = random(), traceLow = random(), span = random();  // in this order (a declaration sequences them)
  return traceparent(traceHigh, traceLow, span);
}

std::string peerIdentityVerdict(const PeerCheck& c) {
  if (c.identity.empty()) return "its certificate names no single SPIFFE identity";
  if (c.role == PeerRole::kClientOfServer) {
    return c.identity == c.expected ? "" : fmt::format("it proved {}, but {} was expected", c.identity, c.expected);
  }
  // Only a workload may be a client: a node credential (spiffe://<td>/sluice/node/...) or any
  // other identity of the domain would otherwise pass `principals: ["*"]` and namespace rules.
  if (parseWorkloadIdentity(c.identity, c.trustDomain)) return "";
  std::string prefix = "spiffe://" + c.trustDomain + "/";
  if (c.identity.rfind(prefix, 0) != 0) return fmt::format("{} is not of trust domain {}", c.identity, c.trustDomain);
  return fmt::format("{} is not a workload identity (spiffe://{}/ns/<namespace>/sa/<service account>)", c.identity, c.trustDomain);
}

std::string revokedIssuerVerdict(const std::map<std::string, int64_t>& revoked, const std::string& issuedTo,
                                 std::chrono::system_clock::time_point issuedAt) {
  auto revokedAt = pki::revocationCovering(revoked, issuedTo, issuedAt);
  if (!revokedAt) return "";
  return fmt::format("its certificate was issued to node {}, revoked at {} (Unix seconds)", issuedTo, *revokedAt);
}

}  // namespace sluice::ztunnel
