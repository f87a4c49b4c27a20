// What a DestinationRule's connectionPool says about each upstream connection's life (the
// counted limits are circuit_breaker.h's): how long it may sit idle or live, TCP keepalive on
// its socket, and how many HTTP/2 streams one connection carries. Istio's fields and defaults:
//   tcp.idleTimeout            an L4 relay with no bytes either way (unset: the tunnel's 1 h;
//                              0s: none)
//   tcp.maxConnectionDuration  an L4 relay, or an L7 upstream connection, is closed this long
//                              after it started (L7: once its requests are done)
//   tcp.tcpKeepalive           SO_KEEPALIVE with probes/time/interval on the tunnel's TCP
//                              sockets to the destination (not on HBONE connections, which
//                              many destinations share)
//   http.idleTimeout           an L7 upstream connection without requests (unset: 1 h; 0s: none)
//   http.maxConcurrentStreams  streams one upstream HTTP/2 connection carries at once; more
//                              open another connection
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "sluice/common/error.h"

namespace sluice::ztunnel {

struct TcpKeepalive {
  uint32_t probes = 0;              // 0: the kernel's
  std::chrono::seconds time{0};     // 0: the kernel's
  std::chrono::seconds interval{0};  // 0: the kernel's
  bool operator==(const TcpKeepalive&) const = default;
};

struct UpstreamConnectionPolicy {
  static constexpr std::chrono::milliseconds kDefaultHttpIdle = std::chrono::hours(1);
  std::optional<std::chrono::milliseconds> tcpIdleTimeout;   // unset: the tunnel's; 0: none
  std::chrono::milliseconds maxConnectionDuration{0};         // 0: none
  std::optional<TcpKeepalive> keepalive;
  std::optional<std::chrono::milliseconds> httpIdleTimeout;  // unset: kDefaultHttpIdle; 0: none
  uint32_t maxConcurrentStreams = 0;                          // 0: unlimited
  bool operator==(const UpstreamConnectionPolicy&) const = default;

  // An L4 relay's idle timeout: the destination's, else the tunnel's (0: none).
  std::chrono::milliseconds relayIdleTimeout(std::chrono::milliseconds tunnelDefault) const {
    return tcpIdleTimeout.value_or(tunnelDefault);
  }
  std::chrono::milliseconds upstreamIdleTimeout() const { return httpIdleTimeout.value_or(kDefaultHttpIdle); }
};

// Whether a connection that started at `start` has outlived `maxDuration` (0: never) at `now`.
inline bool outlived(std::chrono::steady_clock::time_point start, std::chrono::milliseconds maxDuration,
                     std::chrono::steady_clock::time_point now) {
  return maxDuration.count() > 0 && now - start >= maxDuration;
}

// Turns TCP keepalive on for `fd` with what `k` sets (the rest stays the kernel's).
Status applyKeepalive(int fd, const TcpKeepalive& k);

}  // namespace sluice::ztunnel
