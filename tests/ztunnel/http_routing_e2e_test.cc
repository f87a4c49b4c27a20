// L7 in the client's tunnel, end to end: an app in shop/client (node0) calls Service web's
// HTTP port; node0's ztunnel routes every request on its own (header route, 90/10 split per
// request over one keep-alive connection, redirect, direct response, rewrite and header edits)
// and carries it over HBONE to web-v1 or web-v2 on node1. Independent clients: curl and
// python's http.client; the app is python's http.server answering who it is and what it got.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/l7_fixture.h"
#include "support/privileged.h"

namespace sluice {
namespace {

using nlohmann::json;
constexpr const char* kVip = sim::kCanaryVip;

std::string routesYaml(int v1, int v2) {
  return fmt::format(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: shop}}
spec:
  hosts: [web]
  http:
  - name: canary
    match: [{{headers: {{x-canary: {{exact: always}}}}}}]
    route: [{{destination: {{host: web, subset: v2}}}}]
    headers: {{request: {{set: {{x-routed-by: canary}}}}, response: {{set: {{x-route: canary}}, remove: [server]}}}}
  - name: sticky
    match: [{{headers: {{x-user: {{regex: ".+"}}}}}}]
    route: [{{destination: {{host: web}}}}]
  - name: moved
    match: [{{uri: {{exact: /old}}}}]
    redirect: {{uri: /new, redirectCode: 308}}
  - name: maintenance
    match: [{{uri: {{prefix: /maintenance}}}}]
    directResponse: {{status: 503, body: {{string: down for maintenance}}}}
  - name: legacy
    match: [{{uri: {{prefix: /legacy/}}, method: {{exact: GET}}}}]
    route: [{{destination: {{host: web, subset: v1}}}}]
    rewrite: {{uri: /v1/}}
  - name: split
    route:
    - {{destination: {{host: web, subset: v1}}, weight: {}}}
    - {{destination: {{host: web, subset: v2}}, weight: {}}}
)",
                     v1, v2);
}

class HttpRoutingE2eTest : public L7MeshTest {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    startL7Mesh(
        "tests/interop/http_echo_server.py", "http", routesYaml(90, 10),
        [&] { return curl({"http://" + std::string(kVip) + "/maintenance"}).out == "down for maintenance"; },
        "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}");
  }

  RunOutput curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    return inClient(std::move(argv), std::chrono::seconds(30));
  }

  json keepAlive(int count, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {kVip, "80", std::to_string(count)};
    args.insert(args.end(), extra.begin(), extra.end());
    return clientJson("tests/interop/http_keepalive_client.py", std::move(args));
  }
};

TEST_F(HttpRoutingE2eTest, NinetyTenPerRequestOverOneKeepAliveConnection) {
  json result = keepAlive(10000);
  ASSERT_EQ(result["statuses"].value("200", 0), 10000) << result.dump();
  EXPECT_EQ(result["connections"], 1) << "the client's connection was not kept alive";
  int v2 = result["pods"].value("web-v2", 0);
  EXPECT_EQ(result["pods"].value("web-v1", 0) + v2, 10000);
  // 10 +- 2 points: v2 ~ Binomial(10000, 0.1), sd 30; the bound is 6.7 sd.
  EXPECT_GE(v2, 800) << result.dump();
  EXPECT_LE(v2, 1200) << result.dump();
  // Over HBONE: the server saw the tunnel's CONNECT carry the request, not the app's socket.
  EXPECT_EQ(result["last"]["headers"].value("host", ""), kVip);
  // Istio's request metrics, reported by node0 (no waypoint): every request, by destination.
  EXPECT_EQ(requestsTotal({{"request_protocol", "http"}, {"response_code", "200"}, {"destination_workload", "web-v2"},
                           {"destination_service", "web.shop.svc.cluster.local"}}),
            v2);
  EXPECT_GE(requestsTotal({{"request_protocol", "http"}, {"response_code", "200"}, {"source_workload", "client"}}), 10000);
}

TEST_F(HttpRoutingE2eTest, HeaderRouteEditsAndTraceContext) {
  json result = keepAlive(50, {"--header", "x-canary:always", "--header",
                               "traceparent:00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
  ASSERT_EQ(result["pods"].value("web-v2", 0), 50) << result.dump();
  const json& headers = result["last"]["headers"];
  EXPECT_EQ(headers.value("x-routed-by", ""), "canary");
  EXPECT_EQ(headers.value("traceparent", ""), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
      << "the app's trace context must reach the server unchanged";
  EXPECT_EQ(headers.value("x-request-id", "").size(), 36u) << headers.dump();
  auto response = curl({"-D", "-", "-o", "/dev/null", "-H", "x-canary: always", "http://" + std::string(kVip) + "/"});
  EXPECT_NE(response.out.find("x-route: canary"), std::string::npos) << response.out;
  EXPECT_EQ(response.out.find("server: echo"), std::string::npos) << "response header not removed: " << response.out;
}

TEST_F(HttpRoutingE2eTest, PriorKnowledgeHttp2OnTheHttpPortIsRoutedPerStream) {
  // Istio's http ports carry h2c too: the tunnel tells it from HTTP/1.1 by the preface and
  // routes every stream; the server is reached over HTTP/2 as well (the app's protocol).
  std::string url = "http://" + std::string(kVip) + "/h2";
  auto canary = curl({"--http2-prior-knowledge", "-H", "x-canary: always", "-D", "-", url});
  EXPECT_NE(canary.out.find("HTTP/2 200"), std::string::npos) << canary.out << canary.err;
  EXPECT_NE(canary.out.find("x-route: canary"), std::string::npos) << canary.out;
  json app = json::parse(canary.out.substr(std::min(canary.out.find('{'), canary.out.size())), nullptr, false);
  EXPECT_EQ(app.value("pod", ""), "web-v2") << canary.out;
  EXPECT_EQ(app.value("protocol", ""), "HTTP/2");
  EXPECT_EQ(app["headers"].value("x-routed-by", ""), "canary");
  auto direct = curl({"--http2-prior-knowledge", "-w", " %{http_code} %{http_version}", "http://" + std::string(kVip) + "/maintenance"});
  EXPECT_EQ(direct.out, "down for maintenance 503 2") << direct.err;
  // h2load: 2000 requests on 2 connections, 10 streams each at a time, split 90/10 per stream.
  RunOutput load = inClient({"h2load", "-n", "2000", "-c", "2", "-m", "10", url}, std::chrono::seconds(120));
  EXPECT_NE(load.out.find("status codes: 2000 2xx"), std::string::npos) << load.out << load.err;
  int64_t v2 = requestsTotal({{"request_protocol", "http"}, {"response_code", "200"}, {"destination_workload", "web-v2"}});
  int64_t all = requestsTotal({{"request_protocol", "http"}, {"response_code", "200"}});
  EXPECT_EQ(all, 2001);
  // v2 ~ 1 + Binomial(2000, 0.1): sd 13.4; the bounds are 6 sd.
  EXPECT_GE(v2, 1 + 120);
  EXPECT_LE(v2, 1 + 280);
}

TEST_F(HttpRoutingE2eTest, RedirectDirectResponseAndRewrite) {
  auto redirect = curl({"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://" + std::string(kVip) + "/old?k=v"});
  EXPECT_EQ(redirect.out, fmt::format("308 http://{}/new?k=v", kVip));
  auto direct = curl({"-w", " %{http_code}", "http://" + std::string(kVip) + "/maintenance/x"});
  EXPECT_EQ(direct.out, "down for maintenance 503");
  std::vector<json> log;
  EXPECT_TRUE(waitFor([&] {
    log = accessLog("node0");
    return !log.empty() && log.back().value("path", "") == "/maintenance/x";
  }, std::chrono::seconds(10)));
  if (!log.empty()) {
    EXPECT_EQ(log.back().value("protocol", ""), "HTTP/1.1");
    EXPECT_EQ(log.back().value("response_code", 0), 503);
    EXPECT_EQ(log.back().value("route_name", ""), "maintenance");
    EXPECT_EQ(log.back().value("upstream_host", "x"), "");
  }
  auto legacy = curl({"http://" + std::string(kVip) + "/legacy/a?b=1"});
  json app = json::parse(legacy.out, nullptr, false);
  EXPECT_EQ(app.value("pod", ""), "web-v1") << legacy.out << legacy.err;
  EXPECT_EQ(app.value("path", ""), "/v1/a?b=1");
  // A request body is streamed through (Content-Length and chunked), not buffered.
  auto posted = curl({"-X", "POST", "--data-binary", std::string(100000, 'x'), "-H", "x-canary: always",
                      "http://" + std::string(kVip) + "/upload"});
  EXPECT_EQ(json::parse(posted.out, nullptr, false).value("body_length", -1), 100000) << posted.out << posted.err;
}

TEST_F(HttpRoutingE2eTest, WebsocketAndExpectContinuePassThrough) {
  // A websocket upgrade becomes an opaque two-way relay after the 101: frames up to 1 MiB echo
  // byte for byte (an independent stdlib client and server).
  json ws = clientJson("tests/interop/websocket_client.py", {kVip, "80"});
  EXPECT_TRUE(ws.value("ok", false)) << ws.dump();
  EXPECT_EQ(ws.value("echoed", 0), 4);
  EXPECT_EQ(ws.value("pod", "").rfind("web-v", 0), 0u) << ws.dump();
  // Expect: 100-continue: the server's 100 reaches curl, which then sends the body.
  auto posted = curl({"-v", "-H", "Expect: 100-continue", "-H", "x-canary: always", "--data-binary",
                      std::string(100000, 'y'), "http://" + std::string(kVip) + "/expect"});
  EXPECT_NE(posted.err.find("< HTTP/1.1 100 Continue"), std::string::npos) << posted.err.substr(0, 2000);
  EXPECT_EQ(json::parse(posted.out, nullptr, false).value("body_length", -1), 100000) << posted.out;
}

TEST_F(HttpRoutingE2eTest, GibibyteBodiesStreamBothWaysWithoutBeingHeld) {
  // 1 GiB up and 1 GiB down through node0's L7 proxy and HBONE, over HTTP/1.1 and over h2c,
  // checked byte for byte against a pattern on the far end; the tunnel streams them (its memory does not grow with the body).
  uint64_t rssBefore = rssKiB(nodes_[0]->tunnelPid());
  const std::string gib = std::to_string(uint64_t{1} << 30);
  json up = clientJson("tests/interop/http_bulk.py", {kVip, "80", "up", gib});
  EXPECT_TRUE(up.value("ok", false)) << up.dump();
  json down = clientJson("tests/interop/http_bulk.py", {kVip, "80", "down", gib});
  EXPECT_TRUE(down.value("ok", false)) << down.dump();
  EXPECT_EQ(down.value("bytes", uint64_t{0}), uint64_t{1} << 30);
  // The same over h2c on the same port: HTTP/2 flow control end to end (the app's windows are
  // reopened only as the upstream stream takes the bytes).
  json upH2 = clientJson("tests/interop/http_bulk.py", {kVip, "80", "up", gib, "--h2"});
  EXPECT_TRUE(upH2.value("ok", false)) << upH2.dump();
  json downH2 = clientJson("tests/interop/http_bulk.py", {kVip, "80", "down", gib, "--h2"});
  EXPECT_TRUE(downH2.value("ok", false)) << downH2.dump();
  EXPECT_EQ(downH2.value("bytes", uint64_t{0}), uint64_t{1} << 30);
  uint64_t rssAfter = rssKiB(nodes_[0]->tunnelPid());
  EXPECT_LT(rssAfter, rssBefore + 64 * 1024) << "node0's tunnel grew from " << rssBefore << " KiB to " << rssAfter << " KiB";
}

TEST_F(HttpRoutingE2eTest, ConsistentHashKeepsEachUserOnOneEndpoint) {
  // DestinationRule consistentHash on x-user: every request of a user reaches the same pod,
  // per request over one keep-alive connection; users spread over both pods.
  std::map<std::string, int> usersPerPod;
  for (int user = 0; user < 16; ++user) {
    json result = keepAlive(10, {"--header", fmt::format("x-user:user-{}", user)});
    ASSERT_EQ(result["statuses"].value("200", 0), 10) << result.dump();
    ASSERT_EQ(result["pods"].size(), 1u) << "user-" << user << " was spread: " << result["pods"].dump();
    ++usersPerPod[result["pods"].begin().key()];
  }
  EXPECT_EQ(usersPerPod.size(), 2u) << "16 users all hashed to one of two pods";
}

}  // namespace
}  // namespace sluice
