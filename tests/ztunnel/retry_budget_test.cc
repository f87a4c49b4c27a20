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

}  // namespace
}  // namespace sluice::ztunnel
