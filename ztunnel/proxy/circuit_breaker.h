// Circuit breaking as Istio's DestinationRule `connectionPool` defines it (Envoy's circuit
// breakers): per destination — a service, or one subset of it, as Envoy has a cluster per
// subset — at most so many upstream connections, requests waiting for a connection, requests
// in flight and retries in flight, counted for the whole node (every worker's) so the limits
// mean what they say however many workers there are.
//
// What overflows is refused at once, never queued: an HTTP request gets 503 with response
// flag UO (gRPC: UNAVAILABLE), a TCP connection is closed and counted (reason `overflow`), a
// retry is not made. The mapping to Sluice's upstreams (the client's tunnel keeps upstream
// connections per app connection, not one shared pool):
//   tcp.maxConnections          upstream connections (L4 relays and L7 upstream connections)
//   http.http1MaxPendingRequests requests waiting for their upstream connection to be made
//   http.http2MaxRequests       requests in flight (any protocol: Envoy's max_requests)
//   http.maxRetries             retries in flight
//   http.maxRequestsPerConnection  an upstream connection carries this many, then is closed
// Istio leaves every limit at 2^32-1 (unlimited) unless set: a destination whose policy limits
// nothing has no breaker and its requests touch no shared counter.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/upstream_policy.h"

namespace sluice::ztunnel {

struct ConnectionPoolPolicy {
  static constexpr uint32_t kUnlimited = UINT32_MAX;
  uint32_t maxConnections = kUnlimited;
  uint32_t maxPendingRequests = kUnlimited;
  uint32_t maxRequests = kUnlimited;
  uint32_t maxRetries = kUnlimited;
  uint32_t maxRequestsPerConnection = 0;  // 0: unlimited
  // tcp.connectTimeout: an upstream connection (a TCP connect, or an HBONE CONNECT answered
  // 200) must be made this soon (0: the tunnel's --connect-timeout-ms, Istio's 10 s).
  std::chrono::milliseconds connectTimeout{0};
  std::chrono::milliseconds connectTimeoutOr(std::chrono::milliseconds tunnelDefault) const {
    return connectTimeout.count() > 0 ? connectTimeout : tunnelDefault;
  }
  // Each upstream connection's life (idle and duration limits, keepalive, streams):
  // proxy/upstream_policy.h. Nothing of it is counted.
  UpstreamConnectionPolicy connections;
  bool operator==(const ConnectionPoolPolicy&) const = default;
  // Whether any of the counted limits is set (maxRequestsPerConnection needs no counter).
  bool countsAnything() const {
    return maxConnections != kUnlimited || maxPendingRequests != kUnlimited || maxRequests != kUnlimited ||
           maxRetries != kUnlimited;
  }
};

// What a circuit breaker counts. The names are the metric's `resource` label.
enum class PoolResource : uint8_t { kConnections, kPendingRequests, kRequests, kRetries, kCount };
inline constexpr std::array<std::string_view, static_cast<size_t>(PoolResource::kCount)> kPoolResourceNames{
    "connections", "pending_requests", "requests", "retries"};
uint32_t limitOf(const ConnectionPoolPolicy& policy, PoolResource resource);

// One destination's counters on this node; thread-safe (atomics: workers take and give back
// without a lock).
class CircuitBreaker {
 public:
  // Takes one of `resource` while fewer than `limit` are open; false (an overflow, counted)
  // when `limit` are open already.
  bool tryAcquire(PoolResource resource, uint32_t limit);
  void release(PoolResource resource);
  uint32_t open(PoolResource resource) const { return open_[index(resource)].load(std::memory_order_relaxed); }
  uint64_t overflows(PoolResource resource) const { return overflows_[index(resource)].load(std::memory_order_relaxed); }

 private:
  static size_t index(PoolResource r) { return static_cast<size_t>(r); }
  std::array<std::atomic<uint32_t>, static_cast<size_t>(PoolResource::kCount)> open_{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(PoolResource::kCount)> overflows_{};
};

// One resource taken from a breaker, given back when the slot is reset or destroyed. Empty: it
// holds nothing (the destination limits nothing). Move-only: one owner gives it back once.
class BreakerSlot {
 public:
  BreakerSlot() = default;
  BreakerSlot(std::shared_ptr<CircuitBreaker> breaker, PoolResource resource)
      : breaker_(std::move(breaker)), resource_(resource) {}
  BreakerSlot(BreakerSlot&& other) noexcept : breaker_(std::move(other.breaker_)), resource_(other.resource_) {}
  BreakerSlot& operator=(BreakerSlot&& other) noexcept {
    if (this != &other) {
      reset();
      breaker_ = std::move(other.breaker_);
      resource_ = other.resource_;
    }
    return *this;
  }
  BreakerSlot(const BreakerSlot&) = delete;
  BreakerSlot& operator=(const BreakerSlot&) = delete;
  ~BreakerSlot() { reset(); }
  void reset() {
    if (breaker_) std::exchange(breaker_, nullptr)->release(resource_);
  }
  bool held() const { return breaker_ != nullptr; }
  const CircuitBreaker* breaker() const { return breaker_.get(); }

 private:
  std::shared_ptr<CircuitBreaker> breaker_;
  PoolResource resource_ = PoolResource::kConnections;
};

// A destination's connectionPool as the data path applies it: the policy, and the node's
// breaker for it (null when the policy counts nothing).
struct DestinationPool {
  ConnectionPoolPolicy policy;
  std::shared_ptr<CircuitBreaker> breaker;
  // One `resource`: an empty slot when nothing is counted, nullopt when it overflows.
  std::optional<BreakerSlot> acquire(PoolResource resource) const;
  // What a destination without a DestinationRule has: no limits, no breaker.
  static const DestinationPool& none() {
    static const DestinationPool kNone;
    return kNone;
  }
};

// Every destination's breaker on this node, by "namespace/name/subset" (subset empty for the
// service as a whole). Shared by the snapshot builder (which attaches a breaker to each
// destination whose policy counts something, the same one across configuration updates, so
// what is open stays counted) and the admin views.
class CircuitBreakers {
 public:
  std::shared_ptr<CircuitBreaker> get(const std::string& destination);
  // Drops the breakers of destinations not in `keep` that nothing holds any more.
  void retainOnly(const std::set<std::string>& keep);
  struct View {
    std::string destination;
    std::array<uint32_t, static_cast<size_t>(PoolResource::kCount)> open{};
    std::array<uint64_t, static_cast<size_t>(PoolResource::kCount)> overflows{};
  };
  std::vector<View> describe() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<CircuitBreaker>> breakers_;
};

}  // namespace sluice::ztunnel
