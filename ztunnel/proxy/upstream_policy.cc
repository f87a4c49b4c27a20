#include "proxy/upstream_policy.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace sluice::ztunnel {

Status applyKeepalive(int fd, const TcpKeepalive& k) {
  auto set = [fd](int level, int option, int value, const char* name) -> Status {
    if (::setsockopt(fd, level, option, &value, sizeof(value)) != 0) return failErrno(std::string("setsockopt ") + name);
    return {};
  };
  if (auto s = set(SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"); !s) return s;
  if (k.probes > 0) {
    if (auto s = set(IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(k.probes), "TCP_KEEPCNT"); !s) return s;
  }
  if (k.time.count() > 0) {
    if (auto s = set(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(k.time.count()), "TCP_KEEPIDLE"); !s) return s;
  }
  if (k.interval.count() > 0) {
    if (auto s = set(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(k.interval.count()), "TCP_KEEPINTVL"); !s) return s;
  }
  return {};
}

}  // namespace sluice::ztunnel
