// HTTP/2 and gRPC in the client's tunnel, end to end: an app in shop/client (node0) calls
// Service web's GRPC port over one channel (one HTTP/2 connection); node0's ztunnel routes
// every call on its own (90/10 per call, header route with edits, direct response, no route)
// and multiplexes the calls to each endpoint over HBONE to web-v1 or web-v2 on node1.
// Independent implementations on both ends: grpcio's client and server, and curl speaking
// prior-knowledge HTTP/2 for the answers the tunnel gives itself.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "simcluster/canary_config.h"
#include "simcluster/cluster.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "support/mesh_fixture.h"
#include "support/privileged.h"
#include "support/tunnel_stats.h"

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

class GrpcRoutingE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto mesh = startMesh({});
    ASSERT_TRUE(mesh) << mesh.error().message();
    cluster_ = std::move(mesh->cluster);
    controller_ = std::move(mesh->controller);
    nodes_ = std::move(mesh->nodes);
    ASSERT_TRUE(cluster_->addPod(0, "client", {.ns = "shop", .labels = {{"app", "client"}}}));
    for (const char* version : {"v1", "v2"}) {
      std::string name = std::string("web-") + version;
      ASSERT_TRUE(cluster_->addPod(1, name, {.ns = "shop", .labels = {{"app", "web"}, {"version", version}}}));
      auto app = cluster_->runInPod(name, {.argv = {"/usr/bin/python3", "-u", sourceFile("tests/interop/grpc_echo_server.py"),
                                                    name, "8080"},
                                           .captureOutput = true});
      ASSERT_TRUE(app) << app.error().message();
      ASSERT_TRUE(readLine(app->stdoutPipe(), std::chrono::seconds(20)));
      apps_.push_back(std::move(*app));
    }
    // The canary cluster with its port named "grpc": Istio's protocol selection makes it L7.
    std::string clusterYaml = sim::canaryClusterYaml(*cluster_);
    std::string unnamed = "ports: [{port: 80, targetPort: 8080}]";
    ASSERT_NE(clusterYaml.find(unnamed), std::string::npos);
    clusterYaml.replace(clusterYaml.find(unnamed), unnamed.size(), "ports: [{name: grpc, port: 80, targetPort: 8080}]");
    ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "cluster.yaml", clusterYaml));
    ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "route.yaml", routesYaml(90, 10)));
    ASSERT_TRUE(sim::waitForPodCertificates(*cluster_, nodes_, {"client", "web-v1", "web-v2"}));
    ASSERT_TRUE(waitFor([&] { return curl({"http://" + std::string(kVip) + "/maintenance"}).out == "down for maintenance"; },
                        std::chrono::seconds(20)))
        << "the routes never reached node0";
  }

  RunOutput inClient(std::vector<std::string> argv, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    SpawnOptions options{.argv = std::move(argv), .captureOutput = true};
    options.netnsFd = cluster_->pod("client")->netnsFd.get();
    options.cgroupProcsFd = cluster_->pod("client")->cgroupProcsFd.get();
    auto out = run(options, {}, timeout);
    return out.value_or(RunOutput{});
  }

  // curl speaking HTTP/2 without upgrade (prior knowledge), as gRPC does.
  RunOutput curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--http2-prior-knowledge", "--max-time", "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    return inClient(std::move(argv));
  }

  json grpc(int count, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"/usr/bin/python3", sourceFile("tests/interop/grpc_client.py"),
                                     std::string(kVip) + ":80", std::to_string(count)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunOutput out = inClient(std::move(argv), std::chrono::seconds(240));
    EXPECT_EQ(out.exitCode, 0) << out.err;
    return json::parse(out.out.empty() ? "{}" : out.out, nullptr, false);
  }

  std::unique_ptr<sim::Cluster> cluster_;
  sim::MeshController controller_;
  std::vector<std::unique_ptr<sim::MeshNode>> nodes_;
  std::vector<ChildProcess> apps_;
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
  json large = grpc(3, {"--payload", std::to_string(3 << 20)});
  ASSERT_EQ(large["codes"].value("OK", 0), 3) << large.dump();
  EXPECT_EQ(large["last"].value("request_length", 0), 3 << 20);
}

TEST_F(GrpcRoutingE2eTest, AnswersTheTunnelGivesItselfAreGrpcStatusesOrPlainHttp2) {
  json unrouted = grpc(1, {"--method", "/other.Service/Call"});
  EXPECT_EQ(unrouted["codes"].value("UNIMPLEMENTED", 0), 1) << unrouted.dump();  // 404 NR
  json maintenance = grpc(1, {"--method", "/maintenance.Service/Call"});
  EXPECT_EQ(maintenance["codes"].value("UNAVAILABLE", 0), 1) << maintenance.dump();  // direct 503
  EXPECT_EQ(maintenance.value("details", ""), "down for maintenance");
  auto direct = curl({"-w", " %{http_code} %{http_version}", "http://" + std::string(kVip) + "/maintenance/x"});
  EXPECT_EQ(direct.out, "down for maintenance 503 2") << direct.err;
  auto none = curl({"-o", "/dev/null", "-w", "%{http_code}", "http://" + std::string(kVip) + "/nothing"});
  EXPECT_EQ(none.out, "404") << none.err;
}

}  // namespace
}  // namespace sluice
