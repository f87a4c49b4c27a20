// Circuit breaking (DestinationRule connectionPool): the breaker's counts by table, that two
// threads racing for the last slot never both get it, slots giving back exactly once, and the
// policies and breakers a snapshot builds from YAML (Istio's defaults, subset overrides, the
// same breaker across configuration updates, none for destinations that limit nothing).
#include "proxy/circuit_breaker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "proxy/snapshot_builder.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

using R = PoolResource;

TEST(CircuitBreaker, AdmitsUpToTheLimitAndCountsEachOverflow) {
  struct Case {
    uint32_t limit;
    int attempts;
    uint32_t admitted;
  };
  const Case cases[] = {{1, 1, 1}, {1, 3, 1}, {3, 2, 2}, {3, 10, 3}, {0, 4, 0}};
  for (const auto& c : cases) {
    CircuitBreaker breaker;
    int admitted = 0;
    for (int i = 0; i < c.attempts; ++i) admitted += breaker.tryAcquire(R::kRequests, c.limit) ? 1 : 0;
    EXPECT_EQ(static_cast<uint32_t>(admitted), c.admitted) << "limit " << c.limit;
    EXPECT_EQ(breaker.open(R::kRequests), c.admitted);
    EXPECT_EQ(breaker.overflows(R::kRequests), static_cast<uint64_t>(c.attempts) - c.admitted);
    EXPECT_EQ(breaker.open(R::kConnections), 0u) << "resources are counted apart";
  }
}

TEST(CircuitBreaker, ARaceForTheLastSlotHasOneWinner) {
  CircuitBreaker breaker;
  constexpr uint32_t kLimit = 3;
  std::atomic<uint32_t> most{0};
  auto work = [&] {
    for (int i = 0; i < 200000; ++i) {
      if (!breaker.tryAcquire(R::kConnections, kLimit)) continue;
      uint32_t now = breaker.open(R::kConnections);
      uint32_t seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      breaker.release(R::kConnections);
    }
  };
  std::thread a(work), b(work), c(work);
  a.join();
  b.join();
  c.join();
  EXPECT_LE(most.load(), kLimit);
  EXPECT_EQ(breaker.open(R::kConnections), 0u) << "every slot taken was given back";
}

TEST(CircuitBreaker, ASlotGivesBackOnceWhereverItMoved) {
  auto breaker = std::make_shared<CircuitBreaker>();
  DestinationPool pool{{.maxRetries = 2}, breaker};
  {
    auto first = pool.acquire(R::kRetries);
    ASSERT_TRUE(first && first->held());
    BreakerSlot moved = std::move(*first);
    EXPECT_FALSE(first->held());
    BreakerSlot assigned;
    assigned = std::move(moved);
    EXPECT_EQ(breaker->open(R::kRetries), 1u);
    auto second = pool.acquire(R::kRetries);
    ASSERT_TRUE(second);
    EXPECT_FALSE(pool.acquire(R::kRetries)) << "two of two are out";
    assigned = std::move(*second);  // the first is given back here
    EXPECT_EQ(breaker->open(R::kRetries), 1u);
  }
  EXPECT_EQ(breaker->open(R::kRetries), 0u);
  EXPECT_EQ(breaker->overflows(R::kRetries), 1u);
  // What the policy leaves unlimited is not counted at all: an empty slot, never an overflow.
  for (int i = 0; i < 10; ++i) {
    auto slot = pool.acquire(R::kRequests);
    ASSERT_TRUE(slot);
    EXPECT_FALSE(slot->held());
  }
  EXPECT_EQ(breaker->open(R::kRequests), 0u);
  DestinationPool unlimited;  // no connectionPool: no breaker
  EXPECT_TRUE(unlimited.acquire(R::kConnections));
}

const std::string kService = testing::webServiceYaml() + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 10}
      http: {http1MaxPendingRequests: 5, http2MaxRequests: 20, maxRetries: 3, maxRequestsPerConnection: 7}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}}
  - {name: v2, labels: {version: v2}}
)";

TEST(CircuitBreaker, SnapshotPoliciesAndTheNodesBreakers) {
  NodeTrafficState node;
  CircuitBreakers& breakers = node.breakers;
  auto snapshot = buildSnapshot(testing::resourcesFromYaml(kService), &node);
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  const ServiceEntry& web = *snapshot->servicesByVip.at("10.96.0.10:80");
  EXPECT_EQ(web.pool.policy, (ConnectionPoolPolicy{.maxConnections = 10, .maxPendingRequests = 5, .maxRequests = 20,
                                                   .maxRetries = 3, .maxRequestsPerConnection = 7}));
  // The subset's own connectionPool replaces the rule's (Istio): what it leaves out is unlimited.
  EXPECT_EQ(web.poolFor("v1").policy, (ConnectionPoolPolicy{.maxRequestsPerConnection = 1}));
  EXPECT_EQ(web.poolFor("v1").breaker, nullptr) << "a policy that counts nothing needs no breaker";
  // A subset without its own is a destination of its own with the rule's limits.
  EXPECT_EQ(web.poolFor("v2").policy, web.pool.policy);
  ASSERT_NE(web.poolFor("v2").breaker, nullptr);
  ASSERT_NE(web.pool.breaker, nullptr);
  EXPECT_NE(web.poolFor("v2").breaker, web.pool.breaker);
  auto views = breakers.describe();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].destination, "shop/web/");
  EXPECT_EQ(views[1].destination, "shop/web/v2");

  // A configuration update keeps each destination's breaker, with what it has open.
  ASSERT_TRUE(web.poolFor("v2").breaker->tryAcquire(R::kConnections, 10));
  auto next = buildSnapshot(testing::resourcesFromYaml(kService), &node);
  ASSERT_TRUE(next);
  const ServiceEntry& again = *next->servicesByVip.at("10.96.0.10:80");
  EXPECT_EQ(again.poolFor("v2").breaker, web.poolFor("v2").breaker);
  EXPECT_EQ(again.poolFor("v2").breaker->open(R::kConnections), 1u);

  // A service without connectionPool: no breaker; the old ones go once nothing holds them.
  snapshot.value() = {};
  next.value() = {};
  auto plain = buildSnapshot(testing::resourcesFromYaml(testing::webServiceYaml()), &node);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->servicesByVip.at("10.96.0.10:80")->pool.breaker, nullptr);
  EXPECT_TRUE(breakers.describe().empty());
}

}  // namespace
}  // namespace sluice::ztunnel
