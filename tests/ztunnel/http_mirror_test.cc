// Where a mirrored request's copy goes (proxy/http_request_routing.h): the route's mirror
// destination and subset, an endpoint chosen by that destination's load balancer, the share of
// requests mirrorPercentage asks for, and a mirror nothing can reach (the copy is dropped).
// Pure decisions over a snapshot built from YAML. Also the ids every routed request carries.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>

#include "proxy/hbone_request.h"
#include "proxy/http_request_routing.h"
#include "proxy/snapshot_builder.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

// Service web (a, b: v1; c: v2; no pod is v3), every request to v1, mirrored to `mirror` at
// `percent`.
std::string mirrored(const std::string& mirror, int percent) {
  return testing::webServiceYaml() +
         "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
         "spec: {host: web, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 250ms}}}, "
         "subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]}\n"
         "---\n"
         "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
         "spec: {hosts: [web], http: [{route: [{destination: {host: web, subset: v1}}], mirror: " + mirror +
         ", mirrorPercentage: {value: " + std::to_string(percent) + "}}]}\n";
}

HttpRouting route(const ConfigSnapshot& config, uint64_t random) {
  l7::HttpHead head;
  head.method = "GET";
  head.target = "/";
  head.headers = {{"Host", "web"}};
  auto vip = SocketAddress::fromIp("10.96.0.10", 80);
  return routeHttpRequest(config, *vip, {80, "shop", nullptr, "10.244.0.2"}, head, {random, random}, random * 7919);
}

TEST(HttpMirror, ACopyGoesToAnEndpointOfTheMirrorSubset) {
  auto config = buildSnapshot(testing::resourcesFromYaml(mirrored("{host: web, subset: v2}", 100)));
  ASSERT_TRUE(config) << config.error().message();
  for (uint64_t r = 0; r < 50; ++r) {
    HttpRouting routing = route(*config, r * 0x9e3779b97f4a7c15ULL);
    ASSERT_FALSE(routing.local);
    EXPECT_NE(routing.endpoint.ip(), "10.244.1.4") << "the primary goes to v1";
    ASSERT_EQ(routing.mirrors.size(), 1u);
    const HttpRouting::Mirror& mirror = routing.mirrors[0];
    EXPECT_EQ(mirror.destination, "shop/web");
    ASSERT_TRUE(mirror.endpoint);
    EXPECT_EQ(mirror.endpoint->toString(), "10.244.1.4:8080") << "v2's only endpoint, at the target port";
    EXPECT_EQ(mirror.connectTimeout, std::chrono::milliseconds(250));
  }
}

TEST(HttpMirror, MirrorPercentageChoosesItsShareOfRequests) {
  auto config = buildSnapshot(testing::resourcesFromYaml(mirrored("{host: web}", 20)));
  ASSERT_TRUE(config) << config.error().message();
  int copies = 0;
  std::mt19937_64 random(42);
  for (int i = 0; i < 10000; ++i) copies += static_cast<int>(route(*config, random()).mirrors.size());
  EXPECT_NEAR(copies, 2000, 160) << "20% of 10,000 (4 standard deviations)";
}

TEST(HttpMirror, AMirrorNothingCanReachHasNoEndpoint) {
  struct Case {
    const char* what;
    std::string mirror;
    const char* destination;
  };
  const Case cases[] = {
      {"an unknown service", "{host: ghost}", "ghost.shop.svc.cluster.local"},
      {"a subset without endpoints", "{host: web, subset: v3}", "shop/web"},
  };
  for (const auto& c : cases) {
    auto config = buildSnapshot(testing::resourcesFromYaml(mirrored(c.mirror, 100)));
    ASSERT_TRUE(config) << c.what << ": " << config.error().message();
    HttpRouting routing = route(*config, 12345);
    ASSERT_FALSE(routing.local) << c.what << ": the primary is routed whatever its mirror";
    ASSERT_EQ(routing.mirrors.size(), 1u) << c.what;
    EXPECT_EQ(routing.mirrors[0].destination, c.destination) << c.what;
    EXPECT_FALSE(routing.mirrors[0].endpoint) << c.what;
  }
}

TEST(HttpMirror, EachOfTheMirrorsChoosesItsShareOnItsOwn) {
  std::string yaml = mirrored("{host: web, subset: v2}", 100);
  const std::string single = "mirror: {host: web, subset: v2}, mirrorPercentage: {value: 100}";
  ASSERT_NE(yaml.find(single), std::string::npos);
  yaml.replace(yaml.find(single), single.size(),
               "mirrors: [{destination: {host: web, subset: v2}, percentage: {value: 50}}, "
               "{destination: {host: web, subset: v1}, percentage: {value: 50}}]");
  auto config = buildSnapshot(testing::resourcesFromYaml(yaml));
  ASSERT_TRUE(config) << config.error().message();
  std::map<size_t, int> copiesPerRequest;
  int toV2 = 0;
  std::mt19937_64 random(7);
  for (int i = 0; i < 10000; ++i) {
    HttpRouting routing = route(*config, random());
    ++copiesPerRequest[routing.mirrors.size()];
    for (const auto& m : routing.mirrors) toV2 += m.endpoint && m.endpoint->ip() == "10.244.1.4" ? 1 : 0;
  }
  // Independent halves: none 25%, one 50%, both 25% (4 standard deviations).
  EXPECT_NEAR(copiesPerRequest[0], 2500, 180);
  EXPECT_NEAR(copiesPerRequest[1], 5000, 200);
  EXPECT_NEAR(copiesPerRequest[2], 2500, 180);
  EXPECT_NEAR(toV2, 5000, 200);
}

// Every routed request without ids gets a W3C traceparent and an x-request-id that is a version
// 4 UUID (RFC 9562: version nibble 4, variant bits 10) made of the generator's next two words;
// ids the app sent are kept.
TEST(DecorateRequest, AddsAVersion4UuidRequestIdAndATraceparentUnlessTheAppSentThem) {
  std::mt19937_64 random(12345), replay(12345);
  for (int i = 0; i < 200; ++i) {
    l7::HttpHead head;
    head.method = "GET";
    head.target = "/";
    decorateRequest(l7::HttpRouteRule{}, head, random);
    uint64_t t1 = replay(), t2 = replay(), span = replay(), a = replay(), b = replay();
    ASSERT_NE(head.find("traceparent"), nullptr);
    EXPECT_EQ(*head.find("traceparent"), traceparent(t1, t2, span));
    ASSERT_NE(head.find("x-request-id"), nullptr);
    EXPECT_EQ(*head.find("x-request-id"),
              fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                          0x8000 | (b >> 48 & 0x3fff), b & 0xffffffffffffULL));
    const std::string& id = *head.find("x-request-id");
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
  }
  l7::HttpHead sent;
  sent.headers = {{"traceparent", "00-1-2-01"}, {"X-Request-Id", "mine"}};
  decorateRequest(l7::HttpRouteRule{}, sent, random);
  EXPECT_EQ(*sent.find("traceparent"), "00-1-2-01");
  EXPECT_EQ(*sent.find("x-request-id"), "mine");
}

}  // namespace
}  // namespace sluice::ztunnel
