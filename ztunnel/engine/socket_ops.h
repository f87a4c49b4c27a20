// Small socket helpers shared by the worker's plain and HBONE paths.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "proxy/pod_runtime.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

inline SocketAddress socketAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t length = sizeof(ss);
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &length)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &length);
  if (rc != 0) return {};
  return SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), length);
}

// A v4-mapped address ("::ffff:10.0.0.1") as plain IPv4, so upstream sockets use AF_INET.
inline SocketAddress unmapped(const SocketAddress& a) {
  std::string ip = a.ip();
  if (a.family() == AF_INET6 && ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos) {
    if (auto v4 = SocketAddress::fromIp(ip.substr(7), a.port())) return *v4;
  }
  return a;
}

inline void setReset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

inline FailReason connectFailure(int err) {
  switch (err) {
    case ECONNREFUSED: return FailReason::kConnectRefused;
    case ETIMEDOUT: case ECANCELED: return FailReason::kConnectTimeout;
    case ENETUNREACH: case EHOSTUNREACH: return FailReason::kUnreachable;
    default: return FailReason::kConnectError;
  }
}

}  // namespace sluice::ztunnel
