// Local rate limiting (Sluice's LocalRateLimit kind): Envoy's local_ratelimit token bucket in
// the client's tunnel. A bucket holds up to maxTokens; every fillInterval, tokensPerFill are
// added (in whole fills, as Envoy does, so the rate is exact and the arithmetic integral); a
// request takes one or is answered 429 (flag RL). The bucket is the node's: every worker's
// requests take from it.
//
// The decisions are pure functions (refill, take) with table tests. TokenBucket holds one
// bucket's state behind a mutex (a few nanoseconds per request, taken only for limited
// destinations); RateLimiters keeps the node's buckets by key, across configuration updates.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace sluice::ztunnel {

struct TokenBucketPolicy {
  uint32_t maxTokens = 1;
  uint32_t tokensPerFill = 1;
  std::chrono::milliseconds fillInterval{1000};
  bool operator==(const TokenBucketPolicy&) const = default;
};

struct TokenBucketState {
  uint32_t tokens = 0;
  std::chrono::steady_clock::time_point lastFill{};  // the time the last whole fill counts from
};

// A new bucket starts full.
TokenBucketState fullBucket(const TokenBucketPolicy& policy, std::chrono::steady_clock::time_point now);
// The bucket after the whole fills between its lastFill and `now` (capped at maxTokens).
TokenBucketState refill(const TokenBucketPolicy& policy, TokenBucketState state, std::chrono::steady_clock::time_point now);

// What one request was told: taken or not, and the x-ratelimit-* values (draft 03, as Envoy
// sends them): the bucket's size, what is left, the seconds until the next fill.
struct RateDecision {
  bool allowed = false;
  uint32_t limit = 0, remaining = 0;
  uint32_t resetSeconds = 0;
};
// Takes one token from `state` (refilled to `now` first) if there is one.
RateDecision take(const TokenBucketPolicy& policy, TokenBucketState& state, std::chrono::steady_clock::time_point now);

class TokenBucket {
 public:
  TokenBucket(TokenBucketPolicy policy, std::chrono::steady_clock::time_point now)
      : policy_(policy), state_(fullBucket(policy, now)) {}
  RateDecision take(std::chrono::steady_clock::time_point now);
  // Whether a refill would leave it full: it holds nothing a new bucket would not.
  bool full(std::chrono::steady_clock::time_point now) const;
  const TokenBucketPolicy& policy() const { return policy_; }

 private:
  const TokenBucketPolicy policy_;
  mutable std::mutex mutex_;
  TokenBucketState state_;
};

// A LocalRateLimit on a service, as the data path applies it (ServiceEntry::rateLimit).
struct RateLimitEntry {
  std::string key;  // "<namespace>/<name>/" of the LocalRateLimit: its buckets' key prefix
  TokenBucketPolicy bucket;
  std::set<std::string> routes;  // only requests these http routes routed (empty: every request)
  bool perSourcePrincipal = false;
  // The node's buckets by key (rateLimitKey: one per route, or one), unless perSourcePrincipal
  // (then each client identity's comes from the node's RateLimiters per request).
  std::map<std::string, std::shared_ptr<TokenBucket>> buckets;
};

// The bucket key one request takes from: nullopt when the limit does not apply to its route.
// Pure (table-tested).
std::optional<std::string> rateLimitKey(const RateLimitEntry& limit, const std::string& route, const std::string& principal);

// The node's buckets by key ("<LocalRateLimit ns/name>/<route>/<principal>"). A key whose
// policy changed gets a new, full bucket. Bounded: past kMaxBuckets, full buckets are dropped
// (a full bucket is the same as a new one, so nothing is forgotten that matters).
class RateLimiters {
 public:
  static constexpr size_t kMaxBuckets = 1 << 16;
  std::shared_ptr<TokenBucket> get(const std::string& key, const TokenBucketPolicy& policy,
                                   std::chrono::steady_clock::time_point now);
  // Drops the buckets whose key starts with none of `prefixes` (their LocalRateLimit is gone).
  void retainPrefixes(const std::set<std::string>& prefixes);
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<TokenBucket>> buckets_;
};

}  // namespace sluice::ztunnel
