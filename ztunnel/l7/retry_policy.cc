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
  Bucket& b = buckets_[static_cast<size_t>(second % RetryBudgetPolicy::kMaxWindowSeconds)];
  if (b.second != second) b = Bucket{second, 0, 0};  // a second that left the window
  return b;
}

void RetryBudget::request(std::chrono::steady_clock::time_point now) { ++bucket(now).requests; }

bool RetryBudget::tryRetry(const RetryBudgetPolicy& policy, std::chrono::steady_clock::time_point now, uint32_t inFlight) {
  Bucket& current = bucket(now);
  int64_t second = current.second;
  int window = std::clamp(policy.windowSeconds, 1, RetryBudgetPolicy::kMaxWindowSeconds);
  uint64_t requests = 0, retries = 0;
  for (const Bucket& b : buckets_) {
    if (b.second > second - window && b.second <= second) {
      requests += b.requests;
      retries += b.retries;
    }
  }
  double allowed = policy.ratio * static_cast<double>(requests) + (policy.minConcurrency ? 0.0 : policy.floorPerSecond * window);
  bool withinShare = static_cast<double>(retries) + 1 <= allowed;
  bool withinFloor = policy.minConcurrency && inFlight < *policy.minConcurrency;
  if (!withinShare && !withinFloor) {
    ++denied_;
    return false;
  }
  ++current.retries;
  return true;
}

RetryInFlight& RetryInFlight::operator=(RetryInFlight&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    service_ = std::move(other.service_);
  }
  return *this;
}

void RetryInFlight::reset() {
  if (owner_ != nullptr) owner_->ended(service_);
  owner_ = nullptr;
}

void RetryBudgets::request(const std::string& service, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  budgets_[service].request(now);
}

std::optional<RetryInFlight> RetryBudgets::tryRetry(const std::string& service, const RetryBudgetPolicy& policy,
                                                    std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  Counts& c = counts_[service];
  bool allowed = budgets_[service].tryRetry(policy, now, c.inFlight);
  ++(allowed ? c.retries : c.denied);
  if (!allowed) return std::nullopt;
  ++c.inFlight;
  return RetryInFlight(this, service);
}

void RetryBudgets::ended(const std::string& service) {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(service);
  if (it != counts_.end() && it->second.inFlight > 0) --it->second.inFlight;
}

std::map<std::string, RetryBudgets::Counts> RetryBudgets::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

}  // namespace sluice::ztunnel::l7
