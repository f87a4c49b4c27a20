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

// Linkerd's retry budget over a sliding window of 10 one-second buckets: a retry is allowed
// while retries in the window stay within 20% of the requests in it plus 10 per second of the
// window. Not thread-safe (RetryBudgets is).
class RetryBudget {
 public:
  static constexpr int kBuckets = 10;
  static constexpr double kRatio = 0.2;
  static constexpr int kFloorPerSecond = 10;
  void request(std::chrono::steady_clock::time_point now);
  // Takes one retry from the budget; false (counted) when it is spent.
  bool tryRetry(std::chrono::steady_clock::time_point now);
  uint64_t denied() const { return denied_; }

 private:
  struct Bucket {
    int64_t second = -1;
    uint64_t requests = 0, retries = 0;
  };
  Bucket& bucket(std::chrono::steady_clock::time_point now);
  std::array<Bucket, kBuckets> buckets_{};
  uint64_t denied_ = 0;
};

// Every service's budget on this node, shared by the workers.
class RetryBudgets {
 public:
  void request(const std::string& service, std::chrono::steady_clock::time_point now);
  bool tryRetry(const std::string& service, std::chrono::steady_clock::time_point now);
  struct Counts {
    uint64_t retries = 0, denied = 0;
  };
  std::map<std::string, Counts> counts() const;  // by service, for /metrics

 private:
  mutable std::mutex mutex_;
  std::map<std::string, RetryBudget> budgets_;
  std::map<std::string, Counts> counts_;
};

}  // namespace sluice::ztunnel::l7
