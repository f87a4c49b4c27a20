// ztunnel end to end: two simulated nodes, each with the real sluice-agent and the real
// ztunnel; pods created through the CNI chain; an app in one pod talks to an app in another
// through both tunnels (client -> eBPF capture -> node0 ztunnel -> network -> sk_lookup ->
// node1 ztunnel -> server app), checked byte for byte.
#include <gtest/gtest.h>
#include <signal.h>

#include "simcluster/cluster.h"
#include "simcluster/mesh_node.h"
#include "support/privileged.h"

namespace sluice::ztunnel {
namespace {

using nlohmann::json;
using sim::Cluster;
using NodeServices = sim::MeshNode;

using sim::withPort;

struct SendResult {
  int exitCode = -1;
  json result;
};

SendResult sendFrom(const Cluster& cluster, const std::string& pod, const std::string& to, uint64_t bytes,
                    std::chrono::seconds timeout = std::chrono::seconds(120)) {
  auto out = cluster.runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", to, "--bytes",
                                             std::to_string(bytes)},
                                    .captureOutput = true});
  if (!out) return {};
  auto line = readLine(out->stdoutPipe(), timeout);
  auto code = out->wait(std::chrono::seconds(10));
  return {code.value_or(-1), json::parse(line.value_or("{}"), nullptr, false)};
}

const json* podIn(const json& dump, const std::string& name) {
  for (const auto& p : dump["pods"]) {
    if (p["name"] == name) return &p;
  }
  return nullptr;
}

class ZtunnelE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto cluster = sim::createMeshCluster(2);
    ASSERT_TRUE(cluster) << cluster.error().message();
    cluster_ = std::move(*cluster);
    for (int i = 0; i < 2; ++i) {
      nodes_.push_back(std::make_unique<NodeServices>(*cluster_, i));
      ASSERT_TRUE(nodes_[i]->startAgent());
      auto started = nodes_[i]->startTunnel(NodeServices::Tunnel::kZtunnel);
      ASSERT_TRUE(started) << started.error().message();
    }
    ASSERT_TRUE(cluster_->addPod(0, "client"));
    ASSERT_TRUE(cluster_->addPod(1, "server"));
    auto echo = cluster_->runInPod("server", {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                              .captureOutput = true});
    ASSERT_TRUE(echo);
    ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(10)));
    echo_ = std::move(*echo);
  }
  void TearDown() override { nodes_.clear(); }

  std::unique_ptr<Cluster> cluster_;
  std::vector<std::unique_ptr<NodeServices>> nodes_;
  ChildProcess echo_;
};

TEST_F(ZtunnelE2eTest, BytesCrossBothTunnelsExactlyOverIpv4AndIpv6) {
  const sim::Pod* server = cluster_->pod("server");
  for (const auto& ip : {server->ipv4, server->ipv6}) {
    auto r = sendFrom(*cluster_, "client", withPort(ip, 8080), 64ull << 20);
    EXPECT_EQ(r.exitCode, 0) << r.result.dump();
    EXPECT_EQ(r.result.value("received", 0ull), 64ull << 20) << r.result.dump();
  }
  auto source = nodes_[0]->configDump();
  ASSERT_TRUE(source) << source.error().message();
  const json* client = podIn(*source, "client");
  ASSERT_NE(client, nullptr) << source->dump();
  EXPECT_EQ((*client)["counters"]["outbound"]["opened"], 2);
  EXPECT_EQ((*client)["counters"]["outbound"]["bytesFromClient"], 2 * (64ull << 20));
  EXPECT_EQ((*client)["counters"]["outbound"]["bytesToClient"], 2 * (64ull << 20));
  auto destination = nodes_[1]->configDump();
  ASSERT_TRUE(destination);
  const json* srv = podIn(*destination, "server");
  ASSERT_NE(srv, nullptr);
  EXPECT_EQ((*srv)["counters"]["inbound"]["opened"], 2);
  EXPECT_EQ((*srv)["counters"]["inbound"]["bytesFromClient"], 2 * (64ull << 20));
}

TEST_F(ZtunnelE2eTest, OneGibibyteBothWaysAtOnce) {
  // The echo makes both directions carry 1 GiB at the same time.
  auto r = sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv4, 8080), 1ull << 30,
                    std::chrono::seconds(240));
  EXPECT_EQ(r.exitCode, 0) << r.result.dump();
  EXPECT_EQ(r.result.value("received", 0ull), 1ull << 30) << r.result.dump();
}

TEST_F(ZtunnelE2eTest, RefusedDestinationResetsTheClientAndIsCounted) {
  auto r = sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv4, 9999), 1000, std::chrono::seconds(20));
  EXPECT_EQ(r.exitCode, 2) << r.result.dump();
  auto destination = nodes_[1]->configDump();
  ASSERT_TRUE(destination);
  const json* srv = podIn(*destination, "server");
  ASSERT_NE(srv, nullptr);
  EXPECT_EQ((*srv)["counters"]["failed"]["connect_refused"], 1) << srv->dump();
}

TEST_F(ZtunnelE2eTest, MetricsUseIstioNames) {
  ASSERT_EQ(sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv4, 8080), 1000).exitCode, 0);
  auto metrics = nodes_[0]->httpGet("[::1]:15020", "/metrics");
  ASSERT_TRUE(metrics) << metrics.error().message();
  EXPECT_NE(metrics->find("istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"client\","
                          "source_workload_namespace=\"default\",source_principal=\"unknown\"} 1"),
            std::string::npos)
      << *metrics;
  auto ready = nodes_[0]->httpGet("127.0.0.1:15021", "/healthz/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(*ready, "ready\n");
  // The admin port is loopback only: it does not answer on the node's own address.
  auto outside = nodes_[0]->httpGet(cluster_->node(0).addresses.underlayV4 + ":15000", "/config_dump");
  EXPECT_FALSE(outside);
}

TEST_F(ZtunnelE2eTest, ARestartedTunnelGetsItsPodsBackFromTheAgent) {
  ASSERT_TRUE(nodes_[0]->killTunnel());
  auto restarted = nodes_[0]->startTunnel(NodeServices::Tunnel::kZtunnel);
  ASSERT_TRUE(restarted) << restarted.error().message();
  auto dump = nodes_[0]->configDump();
  ASSERT_TRUE(dump);
  EXPECT_NE(podIn(*dump, "client"), nullptr) << dump->dump();
  auto r = sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv6, 8080), 1 << 20);
  EXPECT_EQ(r.exitCode, 0) << r.result.dump();
}

}  // namespace
}  // namespace sluice::ztunnel
