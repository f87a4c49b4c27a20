// Outlier detection as Istio's DestinationRule `outlierDetection` defines it (Envoy's
// semantics): an endpoint that fails N times in a row is ejected from load balancing for
// baseEjectionTime × (times ejected), capped at 300 s, while no more than maxEjectionPercent
// of the service's endpoints are out (at least one may always be). It applies to HTTP services
// (from responses: 5xx, gateway errors 502/503/504) and to TCP services (from local-origin
// failures: connect failures, resets, timeouts) alike — Istio's ztunnel has no such thing.
//
// Local-origin failures count as 503s (so towards consecutive5xxErrors and
// consecutiveGatewayErrors) unless splitExternalLocalOriginErrors, when they have their own
// threshold (consecutiveLocalOriginFailures) and a connect success resets only that counter.
//
// The decisions are pure functions (recordOutcome, mayEject, ejectionTime, decayedEjections,
// ignoreEjections) with table tests; OutlierTracker holds the node's state, shared by every
// worker, so one endpoint's failures add up whichever worker saw them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::ztunnel {

using SteadyTime = std::chrono::steady_clock::time_point;

struct OutlierPolicy {
  bool enabled = false;  // a DestinationRule sets outlierDetection
  uint32_t consecutive5xx = 5;      // 0: off
  uint32_t consecutiveGateway = 0;  // 0: off
  uint32_t consecutiveLocalOrigin = 5;
  bool splitLocalOrigin = false;
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds baseEjection{30000};
  std::chrono::milliseconds maxEjection{300000};  // Envoy's max_ejection_time
  uint32_t maxEjectionPercent = 10;
  uint32_t minHealthPercent = 0;
  bool operator==(const OutlierPolicy&) const = default;
};

enum class Outcome {
  kSuccess,             // a response below 500 (or a TCP connection that connected)
  kServerError,         // 5xx other than 502, 503, 504
  kGatewayError,        // 502, 503, 504
  kLocalOriginFailure,  // connect failure, reset before a response, timeout
};

// The outcome an upstream's HTTP status is.
Outcome outcomeOfStatus(int status);

struct EndpointOutlierState {
  uint32_t consecutive5xx = 0, consecutiveGateway = 0, consecutiveLocalOrigin = 0;
  uint32_t ejections = 0;      // the ejection multiplier (decays while healthy)
  SteadyTime ejectedUntil{};   // in the past: not ejected
  SteadyTime lastChange{};     // when `ejections` last changed (for the decay)
  bool inForce = false;        // counted in OutlierTracker's ejections in force
  bool ejected(SteadyTime now) const { return now < ejectedUntil; }
  bool clean() const { return consecutive5xx == 0 && consecutiveGateway == 0 && consecutiveLocalOrigin == 0 && ejections == 0 && !inForce; }
};

// Counts `outcome`; true when a consecutive-failure threshold is reached (the endpoint is to
// be ejected if the pool allows: mayEject). The counter that tripped is reset then.
bool recordOutcome(const OutlierPolicy& policy, EndpointOutlierState& state, Outcome outcome);
// Whether one more of `total` endpoints may be ejected while `ejected` are: at most
// maxEjectionPercent of them, but at least one (Envoy).
bool mayEject(const OutlierPolicy& policy, size_t ejected, size_t total);
// How long the endpoint's next ejection lasts, given how many it had (after decay).
std::chrono::milliseconds ejectionTime(const OutlierPolicy& policy, uint32_t priorEjections);
// The ejection multiplier after the endpoint stayed in for `now - since`: one less per
// interval (Envoy decrements it at each interval an endpoint is healthy).
uint32_t decayedEjections(const OutlierPolicy& policy, uint32_t ejections, SteadyTime since, SteadyTime now);
// minHealthPercent (panic): with fewer healthy endpoints than that share, ejections are
// ignored and every endpoint takes traffic.
bool ignoreEjections(const OutlierPolicy& policy, size_t healthy, size_t total);

// What pickEndpoint asks: is this host (ServiceEntry::Endpoint::host) of this service ejected now?
class EjectionView {
 public:
  virtual ~EjectionView() = default;
  virtual bool ejected(const std::string& serviceKey, const std::string& host) const = 0;
};

// The node's outlier state: every worker records outcomes and asks about ejections here.
// Thread-safe. Services without outlierDetection never reach it; with no endpoint ejected
// anywhere, ejected() answers without taking the lock.
class OutlierTracker final : public EjectionView {
 public:
  explicit OutlierTracker(std::function<SteadyTime()> clock = [] { return std::chrono::steady_clock::now(); })
      : clock_(std::move(clock)) {}

  // An outcome of `host` (ServiceEntry::Endpoint::host), one of `hostCount` of service `serviceKey`.
  // Returns true when it ejected the endpoint.
  bool record(const std::string& serviceKey, size_t hostCount, const OutlierPolicy& policy,
              const std::string& host, Outcome outcome);
  bool ejected(const std::string& serviceKey, const std::string& host) const override;

  struct EndpointView {
    std::string service, host;
    bool ejected = false;
    uint32_t ejections = 0;
    int64_t ejectedForMs = 0;  // remaining
    uint32_t consecutive5xx = 0, consecutiveGateway = 0, consecutiveLocalOrigin = 0;
  };
  std::vector<EndpointView> describe() const;  // for /config_dump and sluicectl
  uint64_t ejectionsTotal() const { return ejectionsTotal_.load(std::memory_order_relaxed); }
  size_t ejectedNow() const;

 private:
  // Under the lock: notices that `state`'s ejection ended.
  void expire(EndpointOutlierState& state, SteadyTime now) const;

  std::function<SteadyTime()> clock_;
  mutable std::mutex mutex_;
  // service key -> host -> state; only endpoints with something to remember
  // (a failure streak, an ejection, a multiplier) are kept, so the map stays as small as the
  // trouble and endpoints that left the configuration are forgotten once they recover.
  mutable std::map<std::string, std::map<std::string, EndpointOutlierState>> services_;
  std::atomic<size_t> tracked_{0};  // entries in services_: zero means a success changes nothing
  // Ejections in force, counted when they start and when noticed over (under the lock): zero
  // means nothing is ejected and readers skip the lock.
  mutable std::atomic<size_t> inForce_{0};
  std::atomic<uint64_t> ejectionsTotal_{0};
};

}  // namespace sluice::ztunnel
