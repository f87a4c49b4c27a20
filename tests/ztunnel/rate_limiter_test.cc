// Local rate limiting (LocalRateLimit): the token bucket's refill and take by table (Envoy's
// whole fills, the x-ratelimit values), which bucket a request takes from, the node's buckets
// kept across configuration updates and bounded, and a snapshot built from YAML.
#include "proxy/rate_limiter.h"

#include <gtest/gtest.h>

#include "proxy/snapshot_builder.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(TokenBucket, RefillsInWholeFillsUpToItsSize) {
  const TokenBucketPolicy policy{.maxTokens = 10, .tokensPerFill = 3, .fillInterval = 100ms};
  const Clock::time_point t0{};
  struct Case {
    uint32_t tokens;
    std::chrono::milliseconds elapsed;
    uint32_t after;
    std::chrono::milliseconds lastFill;  // since t0
  };
  const Case cases[] = {
      {0, 0ms, 0, 0ms},      {0, 99ms, 0, 0ms},     {0, 100ms, 3, 100ms}, {0, 250ms, 6, 200ms},
      {5, 100ms, 8, 100ms},  {9, 100ms, 10, 100ms}, {0, 10s, 10, 10s},    {10, 1s, 10, 1s},
  };
  for (const auto& c : cases) {
    TokenBucketState s = refill(policy, {c.tokens, t0}, t0 + c.elapsed);
    EXPECT_EQ(s.tokens, c.after) << c.tokens << " tokens, " << c.elapsed.count() << " ms later";
    EXPECT_EQ(s.lastFill - t0, c.lastFill) << "the part of an interval gone counts towards the next fill";
  }
}

TEST(TokenBucket, TakesWhileTokensLastAndSaysWhenTheNextComes) {
  const TokenBucketPolicy policy{.maxTokens = 3, .tokensPerFill = 1, .fillInterval = 2s};
  Clock::time_point t0{};
  TokenBucketState s = fullBucket(policy, t0);
  std::vector<bool> allowed;
  for (int i = 0; i < 5; ++i) allowed.push_back(take(policy, s, t0 + 500ms).allowed);
  EXPECT_EQ(allowed, (std::vector<bool>{true, true, true, false, false}));
  RateDecision denied = take(policy, s, t0 + 500ms);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.limit, 3u);
  EXPECT_EQ(denied.remaining, 0u);
  EXPECT_EQ(denied.resetSeconds, 2u) << "1.5 s to the next fill, rounded up";
  RateDecision later = take(policy, s, t0 + 2s);
  EXPECT_TRUE(later.allowed) << "one token came with the fill at 2 s";
  EXPECT_EQ(later.remaining, 0u);
}

TEST(TokenBucket, WhichBucketARequestTakesFrom) {
  RateLimitEntry all{.key = "shop/web/"};
  RateLimitEntry someRoutes{.key = "shop/web/", .routes = {"checkout", "cart"}};
  RateLimitEntry perPrincipal{.key = "shop/web/", .routes = {"checkout"}, .perSourcePrincipal = true};
  struct Case {
    const RateLimitEntry* limit;
    const char* route;
    std::optional<std::string> key;
  };
  const std::string alice = "spiffe://cluster.local/ns/shop/sa/alice";
  const Case cases[] = {
      {&all, "checkout", "shop/web//"},
      {&all, "", "shop/web//"},
      {&someRoutes, "checkout", "shop/web/checkout/"},
      {&someRoutes, "cart", "shop/web/cart/"},
      {&someRoutes, "browse", std::nullopt},
      {&perPrincipal, "checkout", "shop/web/checkout/" + alice},
      {&perPrincipal, "cart", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(rateLimitKey(*c.limit, c.route, alice), c.key) << c.route;
}

TEST(RateLimiters, KeepBucketsAcrossUpdatesAndStayBounded) {
  RateLimiters limiters;
  TokenBucketPolicy policy{.maxTokens = 2, .tokensPerFill = 1, .fillInterval = 1s};
  Clock::time_point now = Clock::now();
  auto a = limiters.get("shop/web//", policy, now);
  EXPECT_TRUE(a->take(now).allowed);
  EXPECT_EQ(limiters.get("shop/web//", policy, now), a) << "the same policy keeps the bucket and its tokens";
  TokenBucketPolicy bigger{.maxTokens = 5, .tokensPerFill = 1, .fillInterval = 1s};
  auto b = limiters.get("shop/web//", bigger, now);
  EXPECT_NE(b, a) << "a changed policy starts a new, full bucket";
  EXPECT_EQ(b->take(now).remaining, 4u);
  limiters.get("shop/other//", policy, now);
  limiters.retainPrefixes({"shop/web/"});
  EXPECT_EQ(limiters.size(), 1u) << "the buckets of a LocalRateLimit that is gone are dropped";
  // Bounded: past the cap, full buckets (the same as new ones) make room; used ones stay.
  for (size_t i = 0; i <= RateLimiters::kMaxBuckets + 1; ++i) limiters.get("p/" + std::to_string(i), policy, now);
  EXPECT_LE(limiters.size(), RateLimiters::kMaxBuckets + 2);
  EXPECT_EQ(limiters.get("shop/web//", bigger, now), b) << "a bucket that is not full is kept";
}

const std::string kLimited = testing::webServiceYaml() + R"(apiVersion: sluice.io/v1alpha1
kind: LocalRateLimit
metadata: {name: web-limit, namespace: shop}
spec: {host: web, tokenBucket: {maxTokens: 2, tokensPerFill: 1, fillInterval: 1s}}
)";

TEST(RateLimiters, SnapshotsShareTheNodesBuckets) {
  NodeTrafficState node;
  auto first = buildSnapshot(testing::resourcesFromYaml(kLimited), &node);
  ASSERT_TRUE(first) << first.error().message();
  const auto& limit = first->servicesByVip.at("10.96.0.10:80")->rateLimit;
  ASSERT_NE(limit, nullptr);
  EXPECT_EQ(limit->key, "shop/web-limit/");
  EXPECT_EQ(limit->bucket, (TokenBucketPolicy{.maxTokens = 2, .tokensPerFill = 1, .fillInterval = 1s}));
  ASSERT_EQ(limit->buckets.size(), 1u);
  auto bucket = limit->buckets.at("shop/web-limit//");
  auto now = Clock::now();
  EXPECT_TRUE(bucket->take(now).allowed);
  auto second = buildSnapshot(testing::resourcesFromYaml(kLimited), &node);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->servicesByVip.at("10.96.0.10:80")->rateLimit->buckets.at("shop/web-limit//"), bucket)
      << "an update keeps the tokens already taken";
  auto none = buildSnapshot(testing::resourcesFromYaml(testing::webServiceYaml()), &node);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->servicesByVip.at("10.96.0.10:80")->rateLimit, nullptr);
  EXPECT_EQ(node.rateLimiters.size(), 0u);
}

}  // namespace
}  // namespace sluice::ztunnel
