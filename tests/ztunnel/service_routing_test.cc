// Services in the tunnel: the controller's resources become a snapshot, and a connection to a
// VIP goes to an endpoint of the subset the weighted split picks. Pure functions, tables.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "config/config_loader.h"
#include "support/config_text.h"
#include "discovery/discovery_server.h"
#include "proxy/outbound_decision.h"
#include "proxy/snapshot_builder.h"

namespace sluice::ztunnel {
namespace {

constexpr const char* kCanary = R"(
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: web-v1, namespace: shop, labels: {app: web, version: v1}}
spec: {node: node1, addresses: [10.244.1.2]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: web-v2, namespace: shop, labels: {app: web, version: v2}}
spec: {node: node1, addresses: [10.244.1.3]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec: {host: web, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  tcp: [{route: [{destination: {host: web, subset: v1}, weight: 90}, {destination: {host: web, subset: v2}, weight: 10}]}]
)";

std::map<std::string, config::v1::Resource> resourcesOf(const std::string& yaml) { return testing::resourcesFromYaml(yaml); }

TEST(BuildSnapshot, ServiceWithWeightedSubsets) {
  auto snapshot = buildSnapshot(resourcesOf(kCanary));
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  ASSERT_TRUE(snapshot->servicesByVip.contains("10.96.0.10:80"));
  const auto& web = *snapshot->servicesByVip.at("10.96.0.10:80");
  EXPECT_EQ(web.key, "shop/web");
  EXPECT_EQ(web.endpoints.size(), 2u);
  ASSERT_EQ(web.splits.size(), 2u);
  EXPECT_EQ(web.splits[0].subset, "v1");
  EXPECT_EQ(web.splits[0].weight, 90);
  EXPECT_EQ(web.splits[1].labels.at("version"), "v2");
}

TEST(BuildSnapshot, RouteToAnUndefinedSubsetIsRefused) {
  std::string yaml = kCanary;
  const std::string from = "subset: v2}, weight: 10";
  yaml.replace(yaml.find(from), from.size(), "subset: v3}, weight: 10");
  auto snapshot = buildSnapshot(resourcesOf(yaml));
  ASSERT_FALSE(snapshot);
  EXPECT_NE(snapshot.error().message().find("routes to subset v3 of web.shop.svc.cluster.local, which no DestinationRule defines"),
            std::string::npos) << snapshot.error().message();
}

TEST(BuildSnapshot, TwoWorkloadsOnOneAddressAreRefused) {
  // What a controller (or another source) should never send: the node refuses the snapshot
  // (NACK, the last good one stays) instead of letting either workload be taken for the other.
  std::map<std::string, config::v1::Resource> resources;
  for (const char* name : {"a", "b"}) {
    config::v1::Resource r;
    r.set_name(std::string("Workload/shop/") + name);
    auto* w = r.mutable_workload();
    w->set_name(name);
    w->set_namespace_("shop");
    w->set_node("node1");
    w->add_addresses(std::string(name) == "a" ? "fd00::1" : "fd00:0::1");
    resources[r.name()] = r;
  }
  auto snapshot = buildSnapshot(resources);
  ASSERT_FALSE(snapshot);
  EXPECT_NE(snapshot.error().message().find("Workload shop/b: address fd00:0::1 is also Workload shop/a's"), std::string::npos)
      << snapshot.error().message();
}

struct RouteCase {
  const char* description;
  const char* destination;
  uint64_t random, sequence;
  OutboundDecision::Action action;
  const char* target;
  const char* subset;
};

class DecideServiceRoute : public ::testing::TestWithParam<RouteCase> {};

TEST_P(DecideServiceRoute, Table) {
  const auto& c = GetParam();
  static auto snapshot = buildSnapshot(resourcesOf(kCanary));
  ASSERT_TRUE(snapshot);
  auto dst = SocketAddress::parse(c.destination);
  ASSERT_TRUE(dst);
  auto d = decideOutbound(*dst, *snapshot, {c.random, c.sequence});
  EXPECT_EQ(d.action, c.action) << c.description << ": " << d.reason;
  EXPECT_EQ(d.target.toString(), c.target) << c.description;
  EXPECT_EQ(d.subset, c.subset) << c.description;
}

using A = OutboundDecision::Action;
INSTANTIATE_TEST_SUITE_P(
    Table, DecideServiceRoute,
    ::testing::Values(RouteCase{"point 0 of 100 -> v1", "10.96.0.10:80", 0, 0, A::kService, "10.244.1.2:8080", "v1"},
                      RouteCase{"point 89 -> v1", "10.96.0.10:80", 89, 0, A::kService, "10.244.1.2:8080", "v1"},
                      RouteCase{"point 90 -> v2", "10.96.0.10:80", 90, 0, A::kService, "10.244.1.3:8080", "v2"},
                      RouteCase{"point 99 -> v2", "10.96.0.10:80", 199, 0, A::kService, "10.244.1.3:8080", "v2"},
                      RouteCase{"VIP on another port passes through", "10.96.0.10:81", 0, 0, A::kPassthrough, "10.96.0.10:81", ""},
                      RouteCase{"a pod address passes through", "10.244.1.2:8080", 0, 0, A::kPassthrough, "10.244.1.2:8080", ""}));

TEST(DecideServiceRoute, NinetyTenOverManyChoicesIsExact) {
  auto snapshot = buildSnapshot(resourcesOf(kCanary));
  ASSERT_TRUE(snapshot);
  int v2 = 0;
  for (uint64_t r = 0; r < 1000; ++r) {
    auto d = decideOutbound(*SocketAddress::parse("10.96.0.10:80"), *snapshot, {r, r});
    v2 += d.subset == "v2";
  }
  EXPECT_EQ(v2, 100);  // uniform choices over [0, 1000): exactly 10 %
}

TEST(DecideServiceRoute, SubsetWithoutEndpointsIsRefused) {
  std::string yaml = kCanary;
  yaml.replace(yaml.find("labels: {version: v2}}]"), 23, "labels: {version: v9}}]");
  auto snapshot = buildSnapshot(resourcesOf(yaml));
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  auto d = decideOutbound(*SocketAddress::parse("10.96.0.10:80"), *snapshot, {95, 0});
  EXPECT_EQ(d.action, A::kRefuse);
  EXPECT_NE(d.reason.find("service shop/web has no endpoint in subset v2"), std::string::npos) << d.reason;
}

TEST(ComputeIncrement, SendsOnlyWhatDiffers) {
  controller::ConfigSet set;
  ASSERT_TRUE(controller::loadConfigText("t.yaml", kCanary, set));
  controller::finishConfig(set);
  discovery::v1::DiscoveryResponse all;
  controller::computeIncrement(set, {}, &all);
  EXPECT_EQ(all.resources_size(), 5);
  std::map<std::string, std::string> known;
  for (const auto& r : all.resources()) known[r.name()] = r.version();
  discovery::v1::DiscoveryResponse none;
  controller::computeIncrement(set, known, &none);
  EXPECT_EQ(none.resources_size(), 0);
  EXPECT_EQ(none.removed_size(), 0);
  known["VirtualService/shop/web"] = "stale";
  known["Service/shop/gone"] = "x";
  discovery::v1::DiscoveryResponse some;
  controller::computeIncrement(set, known, &some);
  ASSERT_EQ(some.resources_size(), 1);
  EXPECT_EQ(some.resources(0).name(), "VirtualService/shop/web");
  ASSERT_EQ(some.removed_size(), 1);
  EXPECT_EQ(some.removed(0), "Service/shop/gone");
}

// Istio's protocol selection decides which ports the tunnel terminates: appProtocol, else the
// port name's prefix; HTTP goes to the HTTP/1.1 proxy, HTTP2 and GRPC to the HTTP/2 one.
TEST(DecideServiceRoute, PortProtocolSelectsTheProxy) {
  std::string yaml = kCanary;
  const std::string ports = "ports: [{port: 80, targetPort: 8080}]";
  yaml.replace(yaml.find(ports), ports.size(),
               "ports: [{name: http, port: 80}, {name: http-web, port: 82}, {name: http2, port: 83}, "
               "{name: grpc-api, port: 84}, {name: api, appProtocol: grpc, port: 85}, {name: grpc, appProtocol: tcp, port: 86}, "
               "{name: mongo, port: 87}, {name: tcp, port: 88}, {name: httpx, port: 89}]");
  auto snapshot = buildSnapshot(resourcesOf(yaml));
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  const std::pair<uint16_t, A> cases[] = {{80, A::kHttp},     {82, A::kHttp},     {83, A::kHttp2},
                                          {84, A::kHttp2},    {85, A::kHttp2},    {86, A::kService},
                                          {87, A::kService},  {88, A::kService},  {89, A::kService}};
  for (auto [port, action] : cases) {
    auto d = decideOutbound(*SocketAddress::parse(fmt::format("10.96.0.10:{}", port)), *snapshot, {0, 0});
    EXPECT_EQ(d.action, action) << "port " << port << ": " << d.reason;
    if (action != A::kService) {
      EXPECT_EQ(d.target.toString(), fmt::format("10.96.0.10:{}", port)) << "L7 keeps the VIP the app asked for";
    }
  }
}

}  // namespace
}  // namespace sluice::ztunnel
