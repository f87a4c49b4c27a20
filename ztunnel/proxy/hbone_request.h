// Pure decisions of the HBONE paths, table-tested (tests/ztunnel/hbone_request_test.cc): the
// headers a client puts on a CONNECT, and whether a peer's proven identity is acceptable.
#pragma once

#include <cstdint>
#include <chrono>
#include <map>
#include <random>
#include <string>

#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

// RFC 7239 `Forwarded: for=...` naming the original client; an IPv6 node is quoted and
// bracketed, a v4-mapped address is written as IPv4.
std::string forwardedFor(const SocketAddress& client);

// W3C trace context `traceparent` (version 00, sampled) from three random words; a span id of
// zero is invalid, so the low bit of the span id is always set.
std::string traceparent(uint64_t traceHigh, uint64_t traceLow, uint64_t span);
// A traceparent of three words drawn from `random`, in the order of traceparent's parameters.
std::string randomTraceparent(std::mt19937_64& random);

// A v4-mapped address ("::ffff:10.0.0.1") as plain IPv4, so upstream sockets use AF_INET.
SocketAddress unmapped(const SocketAddress& address);

enum class PeerRole { kClientOfServer, kServerOfClient };
struct PeerCheck {
  PeerRole role;
  std::string identity;     // what the peer's certificate proved ("" if none or several)
  std::string expected;     // the identity a server must prove (client side)
  std::string trustDomain;  // the domain a client must belong to (server side)
};
// "" when acceptable; else why not, for the log. A server we dialled must prove exactly the
// destination workload's identity; a client of our server must prove a workload identity of
// our trust domain, never a node's (authorization policy then decides what it may reach).
std::string peerIdentityVerdict(const PeerCheck& check);

// "" unless the peer's certificate was issued to a node the controller revoked (`revoked`: node
// -> revocation time, Unix seconds) at or before its revocation; else why it is refused. A
// certificate that names no node (another CA's, or issued before nodes were recorded) passes.
std::string revokedIssuerVerdict(const std::map<std::string, int64_t>& revoked, const std::string& issuedTo,
                                 std::chrono::system_clock::time_point issuedAt);

}  // namespace sluice::ztunnel
