#include "proxy/rate_limiter.h"

#include <algorithm>

namespace sluice::ztunnel {

TokenBucketState fullBucket(const TokenBucketPolicy& policy, std::chrono::steady_clock::time_point now) {
  return {policy.maxTokens, now};
}

TokenBucketState refill(const TokenBucketPolicy& policy, TokenBucketState state, std::chrono::steady_clock::time_point now) {
  if (now <= state.lastFill || policy.fillInterval.count() <= 0) return state;
  auto fills = static_cast<uint64_t>((now - state.lastFill) / policy.fillInterval);
  if (fills == 0) return state;
  uint64_t tokens = std::min<uint64_t>(state.tokens + fills * policy.tokensPerFill, policy.maxTokens);
  state.tokens = static_cast<uint32_t>(tokens);
  // Whole fills only: the part of an interval already gone still counts towards the next.
  state.lastFill += policy.fillInterval * static_cast<int64_t>(fills);
  return state;
}

RateDecision take(const TokenBucketPolicy& policy, TokenBucketState& state, std::chrono::steady_clock::time_point now) {
  state = refill(policy, state, now);
  RateDecision d;
  d.limit = policy.maxTokens;
  if (state.tokens > 0) {
    --state.tokens;
    d.allowed = true;
  }
  d.remaining = state.tokens;
  auto untilFill = state.lastFill + policy.fillInterval - now;
  d.resetSeconds = static_cast<uint32_t>(
      std::max<int64_t>(0, std::chrono::ceil<std::chrono::seconds>(untilFill).count()));
  return d;
}

RateDecision TokenBucket::take(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  return ztunnel::take(policy_, state_, now);
}

bool TokenBucket::full(std::chrono::steady_clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return refill(policy_, state_, now).tokens >= policy_.maxTokens;
}

std::optional<std::string> rateLimitKey(const RateLimitEntry& limit, const std::string& route, const std::string& principal) {
  if (!limit.routes.empty() && !limit.routes.contains(route)) return std::nullopt;
  std::string key = limit.key + (limit.routes.empty() ? "" : route) + "/";
  if (limit.perSourcePrincipal) key += principal;
  return key;
}

std::shared_ptr<TokenBucket> RateLimiters::get(const std::string& key, const TokenBucketPolicy& policy,
                                               std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto& bucket = buckets_[key];
  if (bucket && bucket->policy() == policy) return bucket;
  if (!bucket && buckets_.size() > kMaxBuckets) {
    std::erase_if(buckets_, [now](const auto& entry) { return entry.second && entry.second->full(now); });
  }
  bucket = std::make_shared<TokenBucket>(policy, now);
  return bucket;
}

void RateLimiters::retainPrefixes(const std::set<std::string>& prefixes) {
  std::lock_guard lock(mutex_);
  std::erase_if(buckets_, [&prefixes](const auto& entry) {
    return std::none_of(prefixes.begin(), prefixes.end(),
                        [&entry](const std::string& prefix) { return entry.first.starts_with(prefix); });
  });
}

size_t RateLimiters::size() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace sluice::ztunnel
