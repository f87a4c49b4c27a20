// SocketAddress: an IPv4 or IPv6 address with a port, parsed from and printed as "1.2.3.4:80" /
// "[fd00::1]:80" (the notation of Istio's :authority and of every tool operators use).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice {

class SocketAddress {
 public:
  SocketAddress() = default;
  // Parses "a.b.c.d:port" or "[v6]:port"; the port must be 0..65535.
  static Result<SocketAddress> parse(std::string_view text);
  // Parses an address without port ("10.0.0.1", "fd00::1") and attaches `port`.
  static Result<SocketAddress> fromIp(std::string_view ip, uint16_t port);
  static SocketAddress fromSockaddr(const sockaddr* sa, socklen_t length);

  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  const sockaddr* sockaddrPtr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const;
  std::string ip() const;
  std::string toString() const;  // "1.2.3.4:80" or "[fd00::1]:80"

 private:
  sockaddr_storage storage_{};
};

// The address of a connected socket's peer, or of the socket itself; empty (family 0) when
// the socket has none (not connected, or already gone).
SocketAddress peerAddress(int fd);
SocketAddress localAddress(int fd);

}  // namespace sluice
