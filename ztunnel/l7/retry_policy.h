// Retries as Istio's VirtualService `retries` defines them (Envoy's semantics), decided by pure
// functions: whether an attempt's outcome is retriable under `retryOn`, whether this request
// may be retried at all (its method, its body, the attempts left), the jittered backoff, and
// the retry budget that keeps retries from multiplying an outage (Linkerd's: retries at most
// 20% of the requests of the last 10 s, plus 10 per second).
//
// A route without `retries` gets Istio's default: 2 attempts on connect-failure,
// refused-stream, unavailable, cancelled and retriable-status-codes 503. `attempts: 0` turns
// retries off.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <string_view>

#include "sluice/common/retry_on.h"

namespace sluice::ztunnel::l7 {

struct RetryPolicy {
  int attempts = 0;  // retries after the first try (0: none)
  RetryOn on;
  std::chrono::milliseconds perTryTimeout{0};  // 0: none (the route's timeout still applies)
  bool operator==(const RetryPolicy&) const = default;
};
RetryPolicy istioDefaultRetries();

// How one try ended.
struct AttemptResult {
  enum class Kind { kConnectFailure, kReset, kRefusedStream, kResponse } kind = Kind::kResponse;
  int status = 0;                 // kResponse: the HTTP status
  std::optional<int> grpcStatus;  // kResponse: a trailers-only gRPC answer's grpc-status
};

// Whether `retryOn` covers this outcome.
bool retriableOutcome(const RetryOn& on, const AttemptResult& result);
// Whether the request may be tried again: the outcome is retriable, attempts remain, its body
// can be sent again (`replayable`), and its method is idempotent unless the request never
// reached the app (a connect failure or a refused stream).
bool shouldRetry(const RetryPolicy& policy, const AttemptResult& result, int retriesSoFar, std::string_view method,
                 bool replayable);
// Envoy's backoff before retry n (0-based): uniform in [0, (2^(n+1) - 1) × 25 ms], at most
// 250 ms; `random` uniform.
std::chrono::milliseconds retryBackoff(int retriesSoFar, uint64_t random);

// A destination's retry budget. Without a DestinationRule `retryBudget`, Linkerd's: retries
// within 20% of the requests of the last 10 s plus 10 per second of that window. With one,
// Istio's fields: `percent` of the requests of the last `budgetInterval` (default 10 s), and
// `minRetryConcurrency` (Envoy's floor) replacing the per-second floor: whatever the share
// says, that many retries may be in flight at once.
struct RetryBudgetPolicy {
  static constexpr int kMaxWindowSeconds = 60;
  double ratio = 0.2;
  int windowSeconds = 10;                 // 1..kMaxWindowSeconds
  double floorPerSecond = 10;             // Linkerd's floor, unless minConcurrency is set
  std::optional<uint32_t> minConcurrency;  // Istio's minRetryConcurrency
  bool operator==(const RetryBudgetPolicy&) const = default;
};

// One destination's budget over one-second buckets. Not thread-safe (RetryBudgets is).
class RetryBudget {
 public:
  void request(std::chrono::steady_clock::time_point now);
  // Takes one retry from the budget (with `inFlight` retries of the destination under way);
  // false (counted) when it is spent.
  bool tryRetry(const RetryBudgetPolicy& policy, std::chrono::steady_clock::time_point now, uint32_t inFlight = 0);
  uint64_t denied() const { return denied_; }

 private:
  struct Bucket {
    int64_t second = -1;
    uint64_t requests = 0, retries = 0;
  };
  Bucket& bucket(std::chrono::steady_clock::time_point now);
  std::array<Bucket, RetryBudgetPolicy::kMaxWindowSeconds> buckets_{};
  uint64_t denied_ = 0;
};

class RetryBudgets;

// A retry under way, counted in flight for its destination until destroyed (move-only; empty:
// counts nothing).
class RetryInFlight {
 public:
  RetryInFlight() = default;
  RetryInFlight(RetryBudgets* owner, std::string service) : owner_(owner), service_(std::move(service)) {}
  RetryInFlight(RetryInFlight&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), service_(std::move(other.service_)) {}
  RetryInFlight& operator=(RetryInFlight&& other) noexcept;
  ~RetryInFlight() { reset(); }
  void reset();

 private:
  RetryBudgets* owner_ = nullptr;
  std::string service_;
};

// Every service's budget on this node, shared by the workers.
class RetryBudgets {
 public:
  void request(const std::string& service, std::chrono::steady_clock::time_point now);
  // A retry of `service` under `policy`: its in-flight token, or nullopt (counted as denied).
  std::optional<RetryInFlight> tryRetry(const std::string& service, const RetryBudgetPolicy& policy,
                                        std::chrono::steady_clock::time_point now);
  struct Counts {
    uint64_t retries = 0, denied = 0;
    uint32_t inFlight = 0;
  };
  std::map<std::string, Counts> counts() const;  // by service, for /metrics

 private:
  friend class RetryInFlight;
  void ended(const std::string& service);
  mutable std::mutex mutex_;
  std::map<std::string, RetryBudget> budgets_;
  std::map<std::string, Counts> counts_;
};

}  // namespace sluice::ztunnel::l7
