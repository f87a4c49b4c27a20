// A DestinationRule's retryBudget as the snapshot compiles it (l7::RetryBudgetPolicy): Istio's
// percent, budgetInterval and minRetryConcurrency, and Linkerd's budget when there is none.
#include <gtest/gtest.h>

#include "proxy/snapshot_builder.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

TEST(RetryBudgetPolicy, SnapshotCompilesIstiosFieldsAndKeepsLinkerdsOtherwise) {
  struct Case {
    const char* what;
    const char* trafficPolicy;
    l7::RetryBudgetPolicy want;
  };
  const Case cases[] = {
      {"no DestinationRule retryBudget: Linkerd's", "{}", {}},
      {"every field", "{retryBudget: {percent: 5, budgetInterval: 30s, minRetryConcurrency: 2}}",
       {.ratio = 0.05, .windowSeconds = 30, .minConcurrency = 2}},
      {"percent alone keeps the interval and Linkerd's floor", "{retryBudget: {percent: 50}}", {.ratio = 0.5}},
      {"minRetryConcurrency replaces the per-second floor", "{retryBudget: {minRetryConcurrency: 0}}", {.minConcurrency = 0}},
  };
  for (const auto& c : cases) {
    auto snapshot = buildSnapshot(testing::resourcesFromYaml(
        testing::webServiceYaml() + "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
                                    "spec: {host: web, trafficPolicy: " + std::string(c.trafficPolicy) + "}\n"));
    ASSERT_TRUE(snapshot) << c.what << ": " << snapshot.error().message();
    EXPECT_EQ(snapshot->servicesByVip.at("10.96.0.10:80")->retryBudget, c.want) << c.what;
  }
}

TEST(RetryBudgetPolicy, ASubsetWithARetryBudgetOfItsOwnHasABudgetOfItsOwn) {
  auto snapshot = buildSnapshot(testing::resourcesFromYaml(
      testing::webServiceYaml() +
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
      "spec: {host: web, trafficPolicy: {retryBudget: {percent: 10}}, subsets: ["
      "{name: v1, labels: {version: v1}}, "
      "{name: v2, labels: {version: v2}, trafficPolicy: {retryBudget: {percent: 1, minRetryConcurrency: 1}}}]}\n"));
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  const ServiceEntry& web = *snapshot->servicesByVip.at("10.96.0.10:80");
  EXPECT_EQ(web.retryBudgetFor(""), (l7::RetryBudgetPolicy{.ratio = 0.1}));
  EXPECT_EQ(web.retryBudgetFor("v1"), (l7::RetryBudgetPolicy{.ratio = 0.1})) << "a subset without one shares the service's";
  EXPECT_EQ(web.retryBudgetKey("v1"), "shop/web");
  EXPECT_EQ(web.retryBudgetFor("v2"), (l7::RetryBudgetPolicy{.ratio = 0.01, .minConcurrency = 1}));
  EXPECT_EQ(web.retryBudgetKey("v2"), "shop/web/v2") << "counted apart from the service's";
}

}  // namespace
}  // namespace sluice::ztunnel
