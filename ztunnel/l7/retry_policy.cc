#include "l7/retry_policy.h"

#include <algorithm>

namespace sluice::ztunnel::l7 {

RetryPolicy istioDefaultRetries() {
  RetryPolicy p;
  p.attempts = 2;
  p.on.connectFailure = p.on.refusedStream = p.on.retriableStatusCodes = true;
  p.on.statusCodes = {503};
  p.on.grpcStatuses = {1, 14};  // cancelled, unavailable
  return p;
}

bool retriableOutcome(const RetryOn& on, const AttemptResult& r) {
  using K = AttemptResult::Kind;
  switch (r.kind) {
    case K::kConnectFailure: return on.connectFailure || on.status5xx || on.gatewayError;
    case K::kReset: return on.reset || on.status5xx || on.gatewayError;
    case K::kRefusedStream: return on.refusedStream || on.status5xx || on.gatewayError;
    case K::kResponse: break;
  }
  if (r.grpcStatus && on.grpcStatuses.contains(*r.grpcStatus)) return true;
  if (on.status5xx && r.status >= 500 && r.status <= 599) return true;
  if (on.gatewayError && (r.status == 502 || r.status == 503 || r.status == 504)) return true;
  if (on.retriable4xx && r.status == 409) return true;
  return on.retriableStatusCodes && on.statusCodes.contains(r.status);
}

bool shouldRetry(const RetryPolicy& policy, const AttemptResult& result, int retriesSoFar, std::string_view method,
                 bool replayable) {
  if (retriesSoFar >= policy.attempts || !replayable || !retriableOutcome(policy.on, result)) return false;
  bool neverReachedTheApp = result.kind == AttemptResult::Kind::kConnectFailure ||
                            result.kind == AttemptResult::Kind::kRefusedStream;
  bool idempotent = method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" || method == "DELETE" ||
                    method == "TRACE";
  return idempotent || neverReachedTheApp;
}

std::chrono::milliseconds retryBackoff(int retriesSoFar, uint64_t random) {
  int64_t ceiling = std::min<int64_t>(((int64_t{1} << std::min(retriesSoFar + 1, 10)) - 1) * 25, 250);
  return std::chrono::milliseconds(static_cast<int64_t>(random % static_cast<uint64_t>(ceiling + 1)));
}

RetryBudget::Bucket& RetryBudget::bucket(std::chrono::steady_clock::time_point now) {
  int64_t second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  Bucket& b = buckets_[static_cast<size_t>(second % kBuckets)];
  if (b.second != second) b = Bucket{second, 0, 0};  // a second that left the window
  return b;
}

void RetryBudget::request(std::chrono::steady_clock::time_point now) { ++bucket(now).requests; }

bool RetryBudget::tryRetry(std::chrono::steady_clock::time_point now) {
  Bucket& current = bucket(now);
  int64_t second = current.second;
  uint64_t requests = 0, retries = 0;
  for (const Bucket& b : buckets_) {
    if (b.second > second - kBuckets && b.second <= second) {
      requests += b.requests;
      retries += b.retries;
    }
  }
  double allowed = kRatio * static_cast<double>(requests) + kFloorPerSecond * kBuckets;
  if (static_cast<double>(retries) + 1 > allowed) {
    ++denied_;
    return false;
  }
  ++current.retries;
  return true;
}

void RetryBudgets::request(const std::string& service, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  budgets_[service].request(now);
}

bool RetryBudgets::tryRetry(const std::string& service, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  bool allowed = budgets_[service].tryRetry(now);
  ++(allowed ? counts_[service].retries : counts_[service].denied);
  return allowed;
}

std::map<std::string, RetryBudgets::Counts> RetryBudgets::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

}  // namespace sluice::ztunnel::l7
