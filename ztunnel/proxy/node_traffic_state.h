// What the node's workers share about destinations, because a limit or a count means the
// node's, whichever worker saw the traffic: outlier detection's per-endpoint state, the retry
// budgets, the circuit breakers' counters, the rate limiters and the mirror counts. Owned by main; it outlives every worker.
#pragma once

#include "l7/retry_policy.h"
#include "proxy/circuit_breaker.h"
#include "proxy/mirror_stats.h"
#include "proxy/outlier_detection.h"
#include "proxy/rate_limiter.h"

namespace sluice::ztunnel {

struct NodeTrafficState {
  OutlierTracker outliers;         // DestinationRule outlierDetection
  l7::RetryBudgets retryBudgets;   // VirtualService retries: the budget per service
  CircuitBreakers breakers;        // DestinationRule connectionPool (attached by the snapshot builder)
  RateLimiters rateLimiters;       // LocalRateLimit token buckets (attached by the snapshot builder)
  MirrorStats mirrors;             // VirtualService mirror: copies sent, dropped, failed
};

}  // namespace sluice::ztunnel
