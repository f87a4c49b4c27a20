// The HBONE client connections of one worker, reused by later outbound connections so a new
// application connection costs an HTTP/2 stream, not a TLS handshake (ztunnel's pool.rs).
//
// Invariants:
//   - A connection belongs to exactly one key: (source pod, source identity, destination
//     identity, destination address). It proves the source pod's identity and was checked
//     against the destination's, so it is never shared across keys: no pod borrows another's
//     identity, and no stream reaches a peer that proved a different identity.
//   - find() hands out only connections that take another stream (not closing, under the
//     peer's MAX_CONCURRENT_STREAMS and ours); when none does the caller dials and add()s one.
//   - A connection leaves the pool (remove()) when it starts closing, before it retires, so
//     the pool never names a connection that is gone.
//   - A connection without streams for the idle timeout is let go: expired() lists them.
// Worker-thread only; `Connection` needs acceptsStreams(), openStreams() and lastUsed().
#pragma once

#include <algorithm>
#include <chrono>
#include <compare>
#include <map>
#include <string>
#include <vector>

#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

inline constexpr uint16_t kHbonePort = 15008;

struct PoolKey {
  std::string sourcePod;  // the pod's uid
  std::string sourceIdentity;
  std::string destinationIdentity;
  std::string destination;  // "ip:15008"
  auto operator<=>(const PoolKey&) const = default;
};

// The key for a connection from `sourcePod` (proving `sourceIdentity`) to the workload at
// `target` that must prove `destinationIdentity`: HBONE goes to the target's 15008.
inline PoolKey poolKey(const std::string& sourcePod, const std::string& sourceIdentity,
                       const std::string& destinationIdentity, const SocketAddress& target) {
  auto hbone = SocketAddress::fromIp(target.ip(), kHbonePort);
  return {sourcePod, sourceIdentity, destinationIdentity, hbone ? hbone->toString() : target.toString()};
}

template <typename Connection>
class HbonePool {
 public:
  explicit HbonePool(std::chrono::milliseconds idleTimeout) : idleTimeout_(idleTimeout) {}

  Connection* find(const PoolKey& key) const {
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    for (Connection* c : it->second) {
      if (c->acceptsStreams()) return c;
    }
    return nullptr;
  }
  void add(const PoolKey& key, Connection* connection) { entries_[key].push_back(connection); }
  void remove(const PoolKey& key, Connection* connection) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    std::erase(it->second, connection);
    if (it->second.empty()) entries_.erase(it);
  }
  // A connection without streams for longer than the idle timeout is let go.
  bool idle(const Connection& c, std::chrono::steady_clock::time_point now) const {
    return c.openStreams() == 0 && now - c.lastUsed() > idleTimeout_;
  }
  std::vector<Connection*> expired(std::chrono::steady_clock::time_point now) const {
    std::vector<Connection*> out;
    for (const auto& [key, list] : entries_) {
      for (Connection* c : list) {
        if (idle(*c, now)) out.push_back(c);
      }
    }
    return out;
  }
  size_t size() const {
    size_t n = 0;
    for (const auto& [key, list] : entries_) n += list.size();
    return n;
  }

 private:
  std::chrono::milliseconds idleTimeout_;
  std::map<PoolKey, std::vector<Connection*>> entries_;
};

}  // namespace sluice::ztunnel
