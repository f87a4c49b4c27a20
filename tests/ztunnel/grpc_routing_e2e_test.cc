// HTTP/2 and gRPC in the client's tunnel, end to end: an app in shop/client (node0) calls
// Service web's GRPC port over one channel (one HTTP/2 connection); node0's ztunnel routes
// every call on its own (90/10 per call, header route with edits, direct response, no route)
// and multiplexes the calls to each endpoint over HBONE to web-v1 or web-v2 on node1.
// Independent implementations on both ends: grpcio's client and server, and curl speaking
// prior-knowledge HTTP/2 for the answers the tunnel gives itself.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

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
    headers: {{request: {{set: {{x-routed-by: canary}}}}, response: {{set: {{x-route: canary}}}}}}
  - name: maintenance
    match: [{{uri: {{prefix: /maintenance}}}}]
    directResponse: {{status: 503, body: {{string: down for maintenance}}}}
  - name: echo
    match: [{{uri: {{prefix: /sluice.test.Echo/}}}}]
    route:
    - {{destination: {{host: web, subset: v1}}, weight: {}}}
    - {{destination: {{host: web, subset: v2}}, weight: {}}}
)",
                     v1, v2);
}

class GrpcRoutingE2eTest : public L7MeshTest {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    startL7Mesh("tests/interop/grpc_echo_server.py", "grpc", routesYaml(90, 10), [&] {
      return curl({"http://" + std::string(kVip) + "/maintenance"}).out == "down for maintenance";
    });
  }

  // curl speaking HTTP/2 without upgrade (prior knowledge), as gRPC does.
  RunOutput curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--http2-prior-knowledge", "--max-time", "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    return inClient(std::move(argv));
  }

  json grpc(int count, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {std::string(kVip) + ":80", std::to_string(count)};
    args.insert(args.end(), extra.begin(), extra.end());
    return clientJson("tests/interop/grpc_client.py", std::move(args));
  }
};

TEST_F(GrpcRoutingE2eTest, NinetyTenPerCallOverOneChannel) {
  // One channel, one connection: an L4 split would send every call to one pod.
  json result = grpc(2000);
  ASSERT_EQ(result["codes"].value("OK", 0), 2000) << result.dump();
  int v2 = result["pods"].value("web-v2", 0);
  EXPECT_EQ(result["pods"].value("web-v1", 0) + v2, 2000);
  // 10 +- 3 points: v2 ~ Binomial(2000, 0.1), sd 13.4; the bound is 4.5 sd.
  EXPECT_GE(v2, 140) << result.dump();
  EXPECT_LE(v2, 260) << result.dump();
  // Request metrics without a waypoint: node0 reports every call, per destination workload,
  // with Istio's labels; and logs each one.
  std::map<std::string, std::string> ok = {{"reporter", "source"},         {"source_workload", "client"},
                                           {"request_protocol", "grpc"},  {"response_code", "200"},
                                           {"grpc_response_status", "0"}, {"destination_service_name", "web"},
                                           {"destination_app", "web"},    {"response_flags", "-"}};
  auto v2Calls = ok;
  v2Calls["destination_workload"] = "web-v2";
  v2Calls["destination_version"] = "v2";
  EXPECT_EQ(requestsTotal(ok), 2000);
  EXPECT_EQ(requestsTotal(v2Calls), v2);
  // The connections those calls rode, as node1 saw them arrive: over mutual TLS, from the
  // client's proven identity, into web-v2 (Istio's TCP metrics, reporter="destination").
  auto arrived = nodes_[1]->metricSum("istio_tcp_connections_opened_total",
                                      {{"reporter", "destination"}, {"destination_workload", "web-v2"},
                                       {"source_workload", "client"}, {"connection_security_policy", "mutual_tls"},
                                       {"source_principal", "spiffe://cluster.local/ns/shop/sa/default"}});
  EXPECT_GE(arrived.value_or(-1), 1);
  // node0's view of the app's one connection: to Service web, whichever pods served it.
  auto opened = nodes_[0]->metricSum("istio_tcp_connections_opened_total",
                                     {{"reporter", "source"}, {"source_workload", "client"},
                                      {"destination_service", "web.shop.svc.cluster.local"}, {"destination_workload", "unknown"}});
  EXPECT_GE(opened.value_or(-1), 1);
  std::vector<json> log;
  EXPECT_TRUE(waitFor([&] { return (log = accessLog("node0")).size() >= 2000; }, std::chrono::seconds(10))) << log.size();
  ASSERT_FALSE(log.empty());
  const json& last = log.back();
  EXPECT_EQ(last.value("protocol", ""), "HTTP/2") << last.dump();
  EXPECT_EQ(last.value("path", ""), "/sluice.test.Echo/Who");
  EXPECT_EQ(last.value("response_code", 0), 200);
  EXPECT_EQ(last.value("grpc_status", ""), "0");
  EXPECT_EQ(last.value("route_name", ""), "echo");
  EXPECT_EQ(last.value("x_request_id", "").size(), 36u);
  EXPECT_EQ(last.value("upstream_host", "").rfind("10.244.1.", 0), 0u) << last.dump();
}

TEST_F(GrpcRoutingE2eTest, HeaderRouteTrailersStreamingAndLargeMessages) {
  json canary = grpc(20, {"--metadata", "x-canary:always", "--metadata",
                          "traceparent:00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
  ASSERT_EQ(canary["pods"].value("web-v2", 0), 20) << canary.dump();
  const json& metadata = canary["last"]["metadata"];
  EXPECT_EQ(metadata.value("x-routed-by", ""), "canary");
  EXPECT_EQ(metadata.value("traceparent", ""), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(metadata.value("x-request-id", "").size(), 36u) << metadata.dump();
  // Trailers come through: the server's trailing metadata, and a status with its message.
  EXPECT_EQ(canary["trailers"].value("x-served-by", ""), "web-v2") << canary.dump();
  json failed = grpc(3, {"--method", "Fail", "--request", "NOT_FOUND"});
  EXPECT_EQ(failed["codes"].value("NOT_FOUND", 0), 3) << failed.dump();
  EXPECT_EQ(failed.value("details", ""), "asked to fail with NOT_FOUND");
  // Server streaming, and a message several flow-control windows long (1 MiB per stream).
  json streamed = grpc(2, {"--method", "Stream", "--request", "500"});
  EXPECT_EQ(streamed.value("streamed", 0), 1000) << streamed.dump();
  // Bidirectional streaming: each message's echo comes back before the next goes out (the
  // tunnel forwards DATA as it arrives, it does not wait for the stream's end).
  json chat = grpc(2, {"--method", "Chat", "--request", "100", "--payload", "10000"});
  EXPECT_EQ(chat["codes"].value("OK", 0), 2) << chat.dump();
  EXPECT_EQ(chat.value("streamed", 0), 200) << chat.dump();
  json large = grpc(3, {"--payload", std::to_string(3 << 20)});
  ASSERT_EQ(large["codes"].value("OK", 0), 3) << large.dump();
  EXPECT_EQ(large["last"].value("request_length", 0), 3 << 20);
}

TEST_F(GrpcRoutingE2eTest, H2loadMultiplexesUnaryCallsOverFewConnections) {
  // nghttp2's h2load as the client: 2 connections, 10 streams each at a time, 2000 unary calls
  // (a 5-byte gRPC frame holding "hi"); every one answered 200 by one of the two pods.
  std::string message = cluster_->node(0).stateDir + "/grpc-hi.bin";
  std::ofstream(message, std::ios::binary) << std::string("\0\0\0\0\2hi", 7);
  RunOutput out = inClient({"h2load", "-n", "2000", "-c", "2", "-m", "10", "-H", "content-type: application/grpc", "-H",
                            "te: trailers", "-d", message, "http://" + std::string(kVip) + "/sluice.test.Echo/Who"},
                           std::chrono::seconds(120));
  EXPECT_NE(out.out.find("2000 succeeded"), std::string::npos) << out.out << out.err;
  EXPECT_NE(out.out.find("status codes: 2000 2xx"), std::string::npos) << out.out;
  EXPECT_EQ(requestsTotal({{"request_protocol", "grpc"}, {"grpc_response_status", "0"}, {"response_code", "200"}}), 2000);
}

TEST_F(GrpcRoutingE2eTest, AnswersTheTunnelGivesItselfAreGrpcStatusesOrPlainHttp2) {
  json unrouted = grpc(1, {"--method", "/other.Service/Call"});
  EXPECT_EQ(unrouted["codes"].value("UNIMPLEMENTED", 0), 1) << unrouted.dump();  // 404 NR
  json maintenance = grpc(1, {"--method", "/maintenance.Service/Call"});
  EXPECT_EQ(maintenance["codes"].value("UNAVAILABLE", 0), 1) << maintenance.dump();  // direct 503
  EXPECT_EQ(maintenance.value("details", ""), "down for maintenance");
  EXPECT_EQ(requestsTotal({{"request_protocol", "grpc"}, {"response_code", "404"}, {"response_flags", "NR"},
                           {"grpc_response_status", "12"}, {"destination_service_name", "web"}}),
            1);
  auto direct = curl({"-w", " %{http_code} %{http_version}", "http://" + std::string(kVip) + "/maintenance/x"});
  EXPECT_EQ(direct.out, "down for maintenance 503 2") << direct.err;
  auto none = curl({"-o", "/dev/null", "-w", "%{http_code}", "http://" + std::string(kVip) + "/nothing"});
  EXPECT_EQ(none.out, "404") << none.err;
  // Broken HTTP/2 from the app: a GOAWAY with PROTOCOL_ERROR (1) before the connection goes.
  json broken = clientJson("tests/interop/h2_protocol_error.py", {kVip, "80"});
  EXPECT_EQ(broken.value("goaway_error", -1), 1) << broken.dump();
}

}  // namespace
}  // namespace sluice
