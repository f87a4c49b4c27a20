// Locality-aware load balancing, end to end: web-v1 runs on node0 beside the client, web-v2
// on node1; each simulated node is a zone of its own (region "sim"). The client's tunnel
// sends everything to the close endpoint while it serves, and fails over to the far one once
// outlier detection ejects it: over HTTP/1.1 with Kubernetes' trafficDistribution PreferClose
// (requests whose local try fails are retried on web-v2, so none is lost), and over TCP with
// Istio's default locality failover (a DestinationRule with outlierDetection).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/l7_fixture.h"
#include "support/privileged.h"

namespace sluice {
namespace {

using nlohmann::json;
constexpr const char* kVip = sim::kCanaryVip;

const std::string kRoutes = everyRequestTo("{host: web}");

class LocalityE2eTest : public L7MeshTest {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    webNodes_["web-v1"] = 0;  // with the client
  }
  std::string localityInForce() {
    auto dump = nodes_[0]->configDump();
    if (!dump || !dump->contains("services")) return "";
    return (*dump)["services"][std::string(kVip) + ":80"].value("locality", "");
  }
  bool ejected(const std::string& pod) {
    auto dump = nodes_[0]->configDump();
    if (!dump || !dump->contains("outliers")) return false;
    for (const auto& e : (*dump)["outliers"]["endpoints"]) {
      if (e.value("host", "") == "shop/" + pod) return e.value("ejected", false);
    }
    return false;
  }
  // One new connection (curl): the pod that answered, "" when it failed.
  std::string answeredBy() {
    RunOutput out = inClient({"curl", "-sS", "--max-time", "5", "http://" + std::string(kVip) + "/"});
    json body = json::parse(out.out, nullptr, false);
    return body.is_object() ? body.value("pod", "") : "";
  }
};

TEST_F(LocalityE2eTest, PreferCloseKeepsRequestsOnTheClientsNodeUntilItsEndpointIsEjected) {
  serviceSpec_ = "trafficDistribution: PreferClose";
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kRoutes,
                                      [&] { return localityInForce() == "trafficDistribution PreferSameZone"; },
                                      "{loadBalancer: {localityLbSetting: {enabled: false}}, "
                                      "outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: 60s}}"));
  json close = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "500"});
  EXPECT_EQ(close["pods"].value("web-v1", 0), 500) << "round robin would send half to node1: " << close.dump();
  // web-v1's app goes away: its tries fail (connection refused behind node0's own tunnel), are
  // retried on web-v2 (Istio's default retries), and five of them eject it.
  ASSERT_TRUE(apps_[0].stop(std::chrono::seconds(2)));
  json failover = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "500"});
  EXPECT_EQ(failover["statuses"].value("200", 0), 500) << failover.dump();
  EXPECT_EQ(failover["pods"].value("web-v2", 0), 500) << failover.dump();
  EXPECT_TRUE(ejected("web-v1"));
  auto retried = nodes_[0]->metricSum("sluice_retries_total", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_GE(*retried, 5) << "each failed local try was retried on web-v2";
  EXPECT_LE(*retried, 10) << "once ejected, web-v1 is not tried";
}

TEST_F(LocalityE2eTest, ATcpServiceFailsOverToTheOtherZoneWhenItsLocalEndpointIsEjected) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "tcp", kRoutes,
                                      [&] { return localityInForce() == "localityLbSetting failover"; },
                                      "{outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: 60s}}"));
  for (int i = 0; i < 20; ++i) ASSERT_EQ(answeredBy(), "web-v1") << "connection " << i << " left the client's zone";
  // Connections are relayed at L4 (no retry): the ones that reach web-v1 while it is down
  // fail, five eject it, and the rest go to node1.
  ASSERT_TRUE(apps_[0].stop(std::chrono::seconds(2)));
  int failed = 0, attempts = 0;
  for (; failed < 5 && attempts < 20; ++attempts) failed += answeredBy().empty() ? 1 : 0;
  EXPECT_EQ(failed, 5) << "in " << attempts << " connections: only the local endpoint is tried before its ejection";
  EXPECT_EQ(attempts, 5);
  ASSERT_TRUE(ejected("web-v1"));
  for (int i = 0; i < 15; ++i) EXPECT_EQ(answeredBy(), "web-v2") << "connection " << i << " after the failover";
}

}  // namespace
}  // namespace sluice
