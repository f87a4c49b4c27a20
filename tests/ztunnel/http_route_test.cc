// Per-request routing decisions (l7/http_route.h), from VirtualService text through the
// controller's loader and the compiler, checked by tables of requests.
#include "l7/http_route.h"

#include <gtest/gtest.h>

#include "config/config_loader.h"

namespace sluice::ztunnel::l7 {
namespace {

constexpr const char* kRoutes = R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: canary-header
    match: [{headers: {x-canary: {exact: always}}}, {queryParams: {canary: {exact: "1"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: api-regex
    match: [{uri: {regex: "/api/v[0-9]+/.*"}, method: {exact: POST}}]
    route: [{destination: {host: api.other.svc.cluster.local}}]
    rewrite: {uri: /internal}
  - name: legacy
    match: [{uri: {prefix: /legacy/}}]
    route: [{destination: {host: web, subset: v1}}]
    rewrite: {uri: /v1/, authority: web-v1}
    headers: {request: {set: {x-route: legacy}, add: {x-hop: tunnel}, remove: [x-debug]}}
  - name: moved
    match: [{uri: {exact: /old}, authority: {prefix: web}}]
    redirect: {uri: /new, redirectCode: 308}
  - name: not-debug-from-frontend
    match: [{uri: {prefix: /fe}, withoutHeaders: {x-debug: {exact: "1"}}, sourceLabels: {app: frontend}, sourceNamespace: shop}]
    directResponse: {status: 418, body: {string: teapot}}
  - name: port-8080
    match: [{port: 8080}]
    route: [{destination: {host: web, subset: v2}}]
  - name: faulty
    match: [{uri: {prefix: /faulty}}]
    route: [{destination: {host: web}}]
    timeout: 1500ms
    fault:
      delay: {fixedDelay: 250ms, percentage: {value: 25}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}
  - name: mirrored
    match: [{uri: {prefix: /mirrored}}]
    route: [{destination: {host: web, subset: v1}}]
    mirror: {host: shadow, subset: v2, port: {number: 9090}}
    mirrorPercentage: {value: 30}
  - name: mirrored-all
    match: [{uri: {prefix: /all-mirrored}}]
    route: [{destination: {host: web}}]
    mirror: {host: web}
  - name: mirrored-none
    match: [{uri: {prefix: /never-mirrored}}]
    route: [{destination: {host: web}}]
    mirror: {host: web}
    mirrorPercentage: {value: 0}
  - name: mirrored-twice
    match: [{uri: {prefix: /twice}}]
    route: [{destination: {host: web}}]
    mirrors:
    - {destination: {host: shadow}, percentage: {value: 5}}
    - {destination: {host: web, subset: v2}}
    - {destination: {host: other}, percentage: {value: 0}}
  - name: split
    match: [{uri: {prefix: /}}]
    route:
    - {destination: {host: web, subset: v1}, weight: 90}
    - {destination: {host: web, subset: v2}, weight: 10}
)";

HttpRouteTable compileTable() {
  controller::ConfigSet set;
  auto loaded = controller::loadConfigText("routes.yaml", kRoutes, set);
  EXPECT_TRUE(loaded) << loaded.error().message();
  const auto& vs = set.resources.at("VirtualService/shop/web").resource.virtual_service();
  auto table = compileRoutes(
      vs, [](const std::string& h) { return h.find('.') == std::string::npos ? h + ".shop.svc.cluster.local" : h; },
      [](const std::string&, const std::string& subset) -> Result<std::map<std::string, std::string>> {
        return std::map<std::string, std::string>{{"version", subset}};
      });
  EXPECT_TRUE(table) << table.error().message();
  return std::move(*table);
}

HttpHead request(std::string method, std::string target, std::vector<HttpHeader> headers = {}) {
  HttpHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.headers = {{"Host", "web"}};
  for (auto& x : headers) h.headers.push_back(std::move(x));
  return h;
}

struct Case {
  const char* description;
  HttpHead head;
  uint16_t port;
  bool fromFrontend;
  const char* rule;  // expected rule name; "" = no route
};

TEST(HttpRoute, FirstMatchingRuleWins) {
  HttpRouteTable table = compileTable();
  std::map<std::string, std::string> frontend{{"app", "frontend"}}, other{{"app", "batch"}};
  const Case cases[] = {
      {"header exact", request("GET", "/x", {{"X-Canary", "always"}}), 80, false, "canary-header"},
      {"header other value", request("GET", "/x", {{"x-canary", "never"}}), 80, false, "split"},
      {"query param (second match of the rule)", request("GET", "/x?a=b&canary=1"), 80, false, "canary-header"},
      {"query param other value", request("GET", "/x?canary=10"), 80, false, "split"},
      {"regex and method", request("POST", "/api/v2/items"), 80, false, "api-regex"},
      {"regex is a full match", request("POST", "/xapi/v2/items"), 80, false, "split"},
      {"method mismatch", request("GET", "/api/v2/items"), 80, false, "split"},
      {"prefix", request("GET", "/legacy/a"), 80, false, "legacy"},
      {"exact with authority", request("GET", "/old"), 80, false, "moved"},
      {"exact ignores the query", request("GET", "/old?x=1"), 80, false, "moved"},
      {"source labels and namespace", request("GET", "/fe/a"), 80, true, "not-debug-from-frontend"},
      {"withoutHeaders present", request("GET", "/fe/a", {{"x-debug", "1"}}), 80, true, "split"},
      {"other source", request("GET", "/fe/a"), 80, false, "split"},
      {"port", request("GET", "/x"), 8080, false, "port-8080"},
  };
  for (const auto& c : cases) {
    const std::map<std::string, std::string>* labels = c.fromFrontend ? &frontend : &other;
    RouteMatch m = matchRoute(table, c.head, {c.port, c.fromFrontend ? "shop" : "batch", labels});
    ASSERT_NE(m.rule, nullptr) << c.description;
    EXPECT_EQ(m.rule->name, c.rule) << c.description;
  }
  HttpRouteTable onlyApi;
  onlyApi.rules.push_back(table.rules[1]);
  EXPECT_EQ(matchRoute(onlyApi, request("GET", "/"), {80, "", nullptr}).rule, nullptr) << "no route: 404 NR";
}

TEST(HttpRoute, WeightedTargetsSplitByTheRandomPoint) {
  HttpRouteTable table = compileTable();
  const HttpRouteRule& split = table.rules.back();
  int v2 = 0;
  for (uint64_t r = 0; r < 1000; ++r) v2 += pickTarget(split, r)->subset == "v2";
  EXPECT_EQ(v2, 100);
  EXPECT_EQ(pickTarget(split, 89)->subsetLabels.at("version"), "v1");
  EXPECT_EQ(pickTarget(split, 90)->host, "web.shop.svc.cluster.local");
}

TEST(HttpRoute, RewritesRedirectsAndHeaderEdits) {
  HttpRouteTable table = compileTable();
  HttpHead legacy = request("GET", "/legacy/a/b?q=1", {{"X-Debug", "yes"}, {"x-hop", "app"}});
  RouteMatch m = matchRoute(table, legacy, {80, "", nullptr});
  applyRewrite(*m.rule, m.matcher, legacy);
  m.rule->requestHeaders.apply(legacy);
  EXPECT_EQ(legacy.target, "/v1/a/b?q=1") << "a prefix match's prefix is replaced, the query kept";
  EXPECT_EQ(legacy.authority(), "web-v1");
  EXPECT_EQ(legacy.find("x-debug"), nullptr);
  EXPECT_EQ(*legacy.find("x-route"), "legacy");
  int hops = 0;
  for (const auto& h : legacy.headers) hops += equalsIgnoreCase(h.name, "x-hop");
  EXPECT_EQ(hops, 2) << "add appends";

  HttpHead api = request("POST", "/api/v3/x?z");
  m = matchRoute(table, api, {80, "", nullptr});
  applyRewrite(*m.rule, m.matcher, api);
  EXPECT_EQ(api.target, "/internal?z") << "a regex match's whole path is replaced";
  EXPECT_EQ(m.rule->targets[0].host, "api.other.svc.cluster.local");

  HttpHead old = request("GET", "/old?k=v");
  m = matchRoute(table, old, {80, "", nullptr});
  ASSERT_TRUE(m.rule->redirect);
  EXPECT_EQ(m.rule->redirect->code, 308);
  EXPECT_EQ(redirectLocation(*m.rule->redirect, old), "http://web/new?k=v");
}

TEST(HttpRoute, FaultsAndTimeoutsCompileAndApplyToTheirShareOfRequests) {
  HttpRouteTable table = compileTable();
  HttpHead faulty = request("GET", "/faulty/x");
  RouteMatch m = matchRoute(table, faulty, {80, "", nullptr});
  ASSERT_NE(m.rule, nullptr);
  ASSERT_TRUE(m.rule->fault);
  const HttpRouteRule::Fault& f = *m.rule->fault;
  EXPECT_EQ(f.delay, std::chrono::milliseconds(250));
  EXPECT_EQ(f.delayPercent, 25);
  EXPECT_EQ(f.abortStatus, 0);
  EXPECT_EQ(f.abortGrpcStatus, 14);
  EXPECT_EQ(f.abortPercent, 10);
  EXPECT_EQ(m.rule->timeout, std::chrono::milliseconds(1500));
  EXPECT_FALSE(matchRoute(table, request("GET", "/other"), {80, "", nullptr}).rule->fault);

  // The random value's high half decides the delay, its low half the abort.
  auto at = [](double share) { return static_cast<uint64_t>(share * 4294967296.0); };
  struct Case {
    const char* what;
    uint64_t random;
    bool delayed, aborted;
  };
  const Case cases[] = {
      {"both draws at 0", 0, true, true},
      {"delay draw just under 25%", at(0.2499) << 32, true, true},
      {"delay draw at 25%", at(0.25) << 32, false, true},
      {"abort draw just under 10%", at(0.0999), true, true},
      {"abort draw just over 10%", at(0.1001), true, false},
      {"both high", (at(0.9) << 32) | at(0.9), false, false},
  };
  for (const auto& c : cases) {
    FaultChoice choice = chooseFault(f, c.random);
    EXPECT_EQ(choice.delay.count() > 0, c.delayed) << c.what;
    EXPECT_EQ(choice.abort, c.aborted) << c.what;
  }
  HttpRouteRule::Fault never{.delay = std::chrono::milliseconds(5), .delayPercent = 0, .abortStatus = 503, .abortPercent = 0};
  HttpRouteRule::Fault always{.delay = std::chrono::milliseconds(5), .delayPercent = 100, .abortStatus = 503, .abortPercent = 100};
  for (uint64_t r : {uint64_t{0}, ~uint64_t{0}, uint64_t{0x8000000080000000}}) {
    EXPECT_FALSE(chooseFault(never, r).abort);
    EXPECT_EQ(chooseFault(never, r).delay.count(), 0);
    EXPECT_TRUE(chooseFault(always, r).abort);
    EXPECT_EQ(chooseFault(always, r).delay.count(), 5);
  }
}

TEST(HttpRoute, MirrorsCompileWithTheirShareAndSubset) {
  HttpRouteTable table = compileTable();
  const HttpRouteRule* partly = matchRoute(table, request("GET", "/mirrored/x"), {80, "", nullptr}).rule;
  ASSERT_NE(partly, nullptr);
  ASSERT_EQ(partly->mirrors.size(), 1u);
  const HttpRouteRule::Mirror& mirror = partly->mirrors[0];
  EXPECT_EQ(mirror.target.host, "shadow.shop.svc.cluster.local");
  EXPECT_EQ(mirror.target.subset, "v2");
  EXPECT_EQ(mirror.target.subsetLabels, (std::map<std::string, std::string>{{"version", "v2"}}));
  EXPECT_EQ(mirror.target.port, 9090);
  EXPECT_EQ(mirror.percent, 30);
  // mirrorPercentage absent: every request (Istio's default); 0%: no mirror at all.
  const HttpRouteRule* all = matchRoute(table, request("GET", "/all-mirrored"), {80, "", nullptr}).rule;
  ASSERT_TRUE(all != nullptr && all->mirrors.size() == 1);
  EXPECT_EQ(all->mirrors[0].percent, 100);
  const HttpRouteRule* none = matchRoute(table, request("GET", "/never-mirrored"), {80, "", nullptr}).rule;
  ASSERT_NE(none, nullptr);
  EXPECT_TRUE(none->mirrors.empty());
  EXPECT_TRUE(matchRoute(table, request("GET", "/other"), {80, "", nullptr}).rule->mirrors.empty());
  // Istio's `mirrors`: each with its own share (absent: all; 0%: dropped).
  const HttpRouteRule* twice = matchRoute(table, request("GET", "/twice"), {80, "", nullptr}).rule;
  ASSERT_TRUE(twice != nullptr && twice->mirrors.size() == 2);
  EXPECT_EQ(twice->mirrors[0].target.host, "shadow.shop.svc.cluster.local");
  EXPECT_EQ(twice->mirrors[0].percent, 5);
  EXPECT_EQ(twice->mirrors[1].target.subset, "v2");
  EXPECT_EQ(twice->mirrors[1].percent, 100);
}

TEST(HttpRoute, MirrorShareIsTheRandomValuesBelowThePercentage) {
  auto at = [](double share) { return static_cast<uint64_t>(share * 18446744073709551615.0); };
  struct Case {
    double percent;
    uint64_t random;
    bool mirrored;
  };
  const Case cases[] = {
      {30, 0, true},           {30, at(0.2999), true}, {30, at(0.3001), false}, {30, ~uint64_t{0}, false},
      {0, 0, false},           {0, at(0.5), false},    {100, ~uint64_t{0}, true}, {100, 0, true},
      {0.5, at(0.0049), true}, {0.5, at(0.0051), false},
  };
  for (const auto& c : cases) EXPECT_EQ(mirrorChosen(c.percent, c.random), c.mirrored) << c.percent << "% at " << c.random;
}

TEST(HttpRoute, AMirroredRequestsAuthorityIsSuffixedShadowBeforeItsPort) {
  const std::pair<const char*, const char*> cases[] = {
      {"reviews", "reviews-shadow"},
      {"reviews:9080", "reviews-shadow:9080"},
      {"reviews.shop.svc.cluster.local:80", "reviews.shop.svc.cluster.local-shadow:80"},
      {"10.96.0.10", "10.96.0.10-shadow"},
      {"10.96.0.10:80", "10.96.0.10-shadow:80"},
      {"[fd00::1]:80", "[fd00::1]-shadow:80"},
      {"[fd00::1]", "[fd00::1]-shadow"},
      {"fd00::1", "fd00::1-shadow"},
      {"", "-shadow"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(shadowAuthority(in), out) << in;
}

}  // namespace
}  // namespace sluice::ztunnel::l7
