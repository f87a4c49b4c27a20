// Outlier detection as Istio's DestinationRule defines it (Envoy's semantics): the pure
// decisions by table, the node's tracker with a fake clock, the policy a snapshot builds from
// YAML (defaults, subset overrides), and pickEndpoint passing over ejected endpoints.
#include "proxy/outlier_detection.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "proxy/outbound_decision.h"
#include "proxy/snapshot_builder.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;
using O = Outcome;

TEST(OutlierDetection, OutcomeOfAStatus) {
  const std::pair<int, Outcome> cases[] = {{200, O::kSuccess}, {404, O::kSuccess},       {429, O::kSuccess},
                                           {500, O::kServerError}, {501, O::kServerError}, {502, O::kGatewayError},
                                           {503, O::kGatewayError}, {504, O::kGatewayError}, {505, O::kServerError}};
  for (auto [status, want] : cases) EXPECT_EQ(outcomeOfStatus(status), want) << status;
}

TEST(OutlierDetection, ConsecutiveFailuresTripTheirThreshold) {
  OutlierPolicy defaults{.enabled = true};  // 5xx: 5, gateway: off, local origin not split
  OutlierPolicy gateway{.enabled = true, .consecutive5xx = 0, .consecutiveGateway = 3};
  OutlierPolicy split{.enabled = true, .consecutive5xx = 2, .consecutiveLocalOrigin = 3, .splitLocalOrigin = true};
  struct Case {
    const char* what;
    const OutlierPolicy* policy;
    std::vector<Outcome> outcomes;
    int trippedAt;  // index of the outcome that trips (-1: none)
  };
  const Case cases[] = {
      {"five 503s", &defaults, {O::kGatewayError, O::kGatewayError, O::kGatewayError, O::kGatewayError, O::kGatewayError}, 4},
      {"five 500s", &defaults, {O::kServerError, O::kServerError, O::kServerError, O::kServerError, O::kServerError}, 4},
      {"a success breaks the streak", &defaults,
       {O::kGatewayError, O::kGatewayError, O::kGatewayError, O::kGatewayError, O::kSuccess, O::kGatewayError}, -1},
      {"connect failures count as 503s", &defaults,
       {O::kLocalOriginFailure, O::kGatewayError, O::kLocalOriginFailure, O::kServerError, O::kLocalOriginFailure}, 4},
      {"gateway errors only: 500 resets them", &gateway,
       {O::kGatewayError, O::kGatewayError, O::kServerError, O::kGatewayError, O::kGatewayError, O::kGatewayError}, 5},
      {"gateway errors only: 5xx off", &gateway, {O::kServerError, O::kServerError, O::kServerError, O::kServerError}, -1},
      {"split: local origin has its own count", &split, {O::kLocalOriginFailure, O::kLocalOriginFailure, O::kLocalOriginFailure}, 2},
      {"split: local failures are not 5xx", &split, {O::kLocalOriginFailure, O::kServerError, O::kLocalOriginFailure}, -1},
      {"split: 5xx from responses", &split, {O::kLocalOriginFailure, O::kServerError, O::kServerError}, 2},
  };
  for (const auto& c : cases) {
    EndpointOutlierState state;
    int tripped = -1;
    for (size_t i = 0; i < c.outcomes.size(); ++i) {
      if (recordOutcome(*c.policy, state, c.outcomes[i]) && tripped < 0) tripped = static_cast<int>(i);
    }
    EXPECT_EQ(tripped, c.trippedAt) << c.what;
  }
}

TEST(OutlierDetection, PoolShareEjectionTimeDecayAndPanic) {
  OutlierPolicy p{.enabled = true};  // 10%, 30 s base, 300 s cap, 10 s interval
  struct Share {
    size_t ejected, total;
    bool may;
  };
  for (auto [ejected, total, may] : {Share{0, 2, true}, Share{1, 2, false}, Share{0, 1, true}, Share{1, 10, false},
                                     Share{1, 20, true}, Share{2, 20, false}, Share{0, 0, false}}) {
    EXPECT_EQ(mayEject(p, ejected, total), may) << ejected << " of " << total;
  }
  OutlierPolicy all = p;
  all.maxEjectionPercent = 100;
  EXPECT_TRUE(mayEject(all, 2, 3));
  EXPECT_FALSE(mayEject(all, 3, 3));
  EXPECT_EQ(ejectionTime(p, 0), 30s);
  EXPECT_EQ(ejectionTime(p, 1), 60s);
  EXPECT_EQ(ejectionTime(p, 9), 300s);   // capped
  EXPECT_EQ(ejectionTime(p, 50), 300s);
  SteadyTime t0{};
  EXPECT_EQ(decayedEjections(p, 3, t0, t0 + 9s), 3u);
  EXPECT_EQ(decayedEjections(p, 3, t0, t0 + 10s), 2u);
  EXPECT_EQ(decayedEjections(p, 3, t0, t0 + 35s), 0u);
  EXPECT_EQ(decayedEjections(p, 3, t0 + 5s, t0), 3u);  // a clock before `since`: unchanged
  OutlierPolicy panic = p;
  panic.minHealthPercent = 50;
  EXPECT_FALSE(ignoreEjections(p, 0, 4));       // 0: no panic threshold
  EXPECT_FALSE(ignoreEjections(panic, 2, 4));
  EXPECT_TRUE(ignoreEjections(panic, 1, 4));
}

struct FakeClock {
  SteadyTime now{std::chrono::hours(1)};
};

TEST(OutlierTracker, EjectsAfterTheStreakReturnsAfterItsTimeAndDoublesTheNext) {
  FakeClock clock;
  OutlierTracker tracker([&] { return clock.now; });
  OutlierPolicy p{.enabled = true};
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(tracker.record("shop/web", 2, p, "10.0.0.1", O::kGatewayError));
  EXPECT_FALSE(tracker.ejected("shop/web", "10.0.0.1"));
  EXPECT_TRUE(tracker.record("shop/web", 2, p, "10.0.0.1", O::kGatewayError));
  EXPECT_TRUE(tracker.ejected("shop/web", "10.0.0.1"));
  EXPECT_FALSE(tracker.ejected("shop/web", "10.0.0.2"));
  EXPECT_FALSE(tracker.ejected("shop/other", "10.0.0.1"));
  // The other endpoint of two may not go too (10% of 2, but at least one is already out).
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(tracker.record("shop/web", 2, p, "10.0.0.2", O::kGatewayError));
  EXPECT_FALSE(tracker.ejected("shop/web", "10.0.0.2"));
  EXPECT_EQ(tracker.ejectedNow(), 1u);
  clock.now += 29s;
  EXPECT_TRUE(tracker.ejected("shop/web", "10.0.0.1"));
  clock.now += 1s;
  EXPECT_FALSE(tracker.ejected("shop/web", "10.0.0.1"));  // back after 30 s
  EXPECT_EQ(tracker.ejectedNow(), 0u);
  // Failing again at once: ejected for twice as long.
  for (int i = 0; i < 5; ++i) tracker.record("shop/web", 2, p, "10.0.0.1", O::kServerError);
  EXPECT_TRUE(tracker.ejected("shop/web", "10.0.0.1"));
  clock.now += 59s;
  EXPECT_TRUE(tracker.ejected("shop/web", "10.0.0.1"));
  clock.now += 1s;
  EXPECT_FALSE(tracker.ejected("shop/web", "10.0.0.1"));
  EXPECT_EQ(tracker.ejectionsTotal(), 2u);
  auto views = tracker.describe();
  ASSERT_FALSE(views.empty());
  EXPECT_EQ(views[0].service, "shop/web");
}

TEST(OutlierTracker, SuccessesForgetHealthyEndpointsAndDisabledPoliciesRecordNothing) {
  FakeClock clock;
  OutlierTracker tracker([&] { return clock.now; });
  OutlierPolicy p{.enabled = true};
  tracker.record("shop/web", 3, p, "10.0.0.1", O::kGatewayError);
  EXPECT_EQ(tracker.describe().size(), 1u);
  tracker.record("shop/web", 3, p, "10.0.0.1", O::kSuccess);
  EXPECT_TRUE(tracker.describe().empty()) << "a healthy endpoint is not kept";
  OutlierPolicy off;  // no outlierDetection in the DestinationRule
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(tracker.record("shop/web", 3, off, "10.0.0.1", O::kGatewayError));
  EXPECT_TRUE(tracker.describe().empty());
}

const std::string kService = testing::webServiceYaml() + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy: {outlierDetection: {consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 100}}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, minHealthPercent: 60}}}
  - {name: v2, labels: {version: v2}}
)";

// A fixed set of ejected endpoints, as pickEndpoint asks about them.
struct Ejected final : EjectionView {
  std::set<std::string> addresses;
  bool ejected(const std::string&, const std::string& host) const override { return addresses.contains(host); }
};

TEST(OutlierDetection, SnapshotPoliciesAndPickingAroundEjectedEndpoints) {
  auto snapshot = buildSnapshot(testing::resourcesFromYaml(kService));
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  const ServiceEntry& web = *snapshot->servicesByVip.at("10.96.0.10:80");
  EXPECT_EQ(web.outlier, (OutlierPolicy{.enabled = true, .consecutiveGateway = 2, .interval = 1s, .baseEjection = 2s,
                                        .maxEjectionPercent = 100}));
  // The subset's own outlierDetection replaces the rule's (Istio), with Istio's defaults.
  EXPECT_EQ(web.outlierFor("v1"), (OutlierPolicy{.enabled = true, .consecutive5xx = 0, .minHealthPercent = 60}));
  EXPECT_EQ(&web.outlierFor("v2"), &web.outlier);

  // Hosts are workloads (a dual-stack pod is one host); an address no workload has is its own.
  ASSERT_EQ(web.endpoints.size(), 3u);
  EXPECT_EQ(web.endpoints[0].host, "shop/a");
  EXPECT_EQ(web.hostCount, 3u);
  Ejected ejected;
  ejected.addresses = {"shop/a"};
  for (uint64_t r = 0; r < 64; ++r) {
    const auto* e = pickEndpoint(web, "", nullptr, {.random = r << 20, .sequence = r, .ejections = &ejected});
    ASSERT_NE(e, nullptr);
    EXPECT_NE(e->address, "10.244.1.2");
  }
  // Every endpoint ejected: traffic goes on to all of them rather than nowhere.
  ejected.addresses = {"shop/a", "shop/b", "shop/c"};
  EXPECT_NE(pickEndpoint(web, "", nullptr, {.ejections = &ejected}), nullptr);
  // Subset v1 (minHealthPercent 60): with one of its two out, 50% are healthy: panic, both serve.
  std::map<std::string, std::string> v1{{"version", "v1"}};
  ejected.addresses = {"shop/a"};
  std::set<std::string> seen;
  for (uint64_t r = 0; r < 8; ++r) seen.insert(pickEndpoint(web, "v1", &v1, {.sequence = r, .ejections = &ejected})->address);
  EXPECT_EQ(seen.size(), 2u);
  // Without a view (no tracker), nothing is passed over.
  EXPECT_NE(pickEndpoint(web, "", nullptr, {.sequence = 0}), nullptr);
}

}  // namespace
}  // namespace sluice::ztunnel
