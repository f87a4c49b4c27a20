// The controller end to end: sluice-controller watching a directory, both nodes' ztunnels
// subscribed, pods behind a Service VIP split 90/10 between two subsets.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "simcluster/canary_config.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "support/privileged.h"

namespace sluice::controller {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sim::MeshNode;

constexpr const char* kVip = sim::kCanaryVip;

class CanaryE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto cluster = sim::createMeshCluster(2);
    ASSERT_TRUE(cluster) << cluster.error().message();
    cluster_ = std::move(*cluster);
    ASSERT_NO_FATAL_FAILURE(startController());
    configDir_ = controller_.configDir();
    auto nodes = sim::startMeshNodes(*cluster_, MeshNode::Tunnel::kZtunnel,
                                     [this](const sim::Node& n) { return controller_.tunnelArgs(n).value(); });
    ASSERT_TRUE(nodes) << nodes.error().message();
    nodes_ = std::move(*nodes);
    ASSERT_TRUE(cluster_->addPod(0, "client", {.ns = "shop"}));
    for (const char* version : {"v1", "v2"}) {
      std::string name = std::string("web-") + version;
      ASSERT_TRUE(cluster_->addPod(1, name, {.ns = "shop", .labels = {{"app", "web"}, {"version", version}}}));
      auto echo = cluster_->runInPod(name, {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                            .captureOutput = true});
      ASSERT_TRUE(echo);
      ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(10)));
      echoes_.push_back(std::move(*echo));
    }
    writeConfig(90, 10);
    ASSERT_TRUE(waitForSplit(90, 10)) << "the nodes never received the 90/10 split";
  }
  void TearDown() override {
    nodes_.clear();
    controller_ = {};
  }

  // Plaintext discovery only (the routing under test needs no identities).
  void startController() {
    auto controller = sim::MeshController::start(*cluster_, {.certificateAuthority = false});
    ASSERT_TRUE(controller) << controller.error().message();
    controller_ = std::move(*controller);
  }

  // The cluster as the controller sees it, and the route (or a replacement route file).
  void writeConfig(int v1, int v2, const std::string& routeOverride = "") {
    ASSERT_TRUE(sim::writeConfigFile(configDir_, "cluster.yaml", sim::canaryClusterYaml(*cluster_)));
    ASSERT_TRUE(sim::writeConfigFile(configDir_, "route.yaml",
                                     routeOverride.empty() ? sim::canaryRouteYaml(v1, v2) : routeOverride));
  }

  // Both tunnels hold the VIP with this split.
  bool waitForSplit(int v1, int v2, std::chrono::seconds timeout = std::chrono::seconds(15)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      for (auto& node : nodes_) {
        auto dump = node->configDump();
        std::string key = std::string(kVip) + ":80";
        all = all && dump && (*dump)["services"].contains(key) &&
              (*dump)["services"][key]["splits"] == json::array({{{"subset", "v1"}, {"weight", v1}}, {{"subset", "v2"}, {"weight", v2}}});
      }
      if (all) return true;
      ::usleep(100000);
    }
    return false;
  }

  // Inbound connections each web pod's tunnel accepted so far.
  std::pair<uint64_t, uint64_t> inboundCounts() {
    auto dump = nodes_[1]->configDump();
    uint64_t v1 = 0, v2 = 0;
    if (!dump) return {0, 0};
    for (const auto& p : (*dump)["pods"]) {
      uint64_t opened = p["counters"]["inbound"]["opened"].get<uint64_t>();
      if (p["name"] == "web-v1") v1 = opened;
      if (p["name"] == "web-v2") v2 = opened;
    }
    return {v1, v2};
  }

  json crr(int count) {
    auto out = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "crr", "--to",
                                                      std::string(kVip) + ":80", "--count", std::to_string(count)},
                                             .captureOutput = true});
    EXPECT_TRUE(out);
    if (!out) return {};
    auto line = readLine(out->stdoutPipe(), std::chrono::seconds(120));
    EXPECT_TRUE(line);
    return json::parse(line.value_or("{}"), nullptr, false);
  }

  std::unique_ptr<sim::Cluster> cluster_;
  std::vector<std::unique_ptr<MeshNode>> nodes_;
  std::vector<ChildProcess> echoes_;
  sim::MeshController controller_;
  std::string configDir_;
};

TEST_F(CanaryE2eTest, NinetyTenSplitOverTwoThousandConnections) {
  auto [v1Before, v2Before] = inboundCounts();
  json result = crr(2000);
  ASSERT_EQ(result.value("connections", 0), 2000) << result.dump();
  ASSERT_EQ(result.value("failed", -1), 0) << result.dump();
  auto [v1, v2] = inboundCounts();
  uint64_t toV1 = v1 - v1Before, toV2 = v2 - v2Before;
  EXPECT_EQ(toV1 + toV2, 2000u);
  // v2 ~ Binomial(2000, 0.1): mean 200, sd 13.4. Bound: 200 +- 67 (5 sd); a correct split
  // fails it with probability ~6e-7.
  EXPECT_GE(toV2, 133u) << "v1 " << toV1 << " v2 " << toV2;
  EXPECT_LE(toV2, 267u) << "v1 " << toV1 << " v2 " << toV2;
}

TEST_F(CanaryE2eTest, NewWeightsMoveNewConnectionsAndLeaveEstablishedOnes) {
  auto hold = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "hold", "--to",
                                                     std::string(kVip) + ":80", "--count", "20"},
                                            .captureOutput = true,
                                            .feedStdin = true});
  ASSERT_TRUE(hold);
  auto held = readLine(hold->stdoutPipe(), std::chrono::seconds(30));
  ASSERT_TRUE(held && *held == "held 20");
  writeConfig(0, 100);
  ASSERT_TRUE(waitForSplit(0, 100));
  auto [v1Before, v2Before] = inboundCounts();
  json result = crr(200);
  ASSERT_EQ(result.value("failed", -1), 0) << result.dump();
  auto [v1, v2] = inboundCounts();
  EXPECT_EQ(v1 - v1Before, 0u);
  EXPECT_EQ(v2 - v2Before, 200u);
  // The 20 connections made under 90/10 are still relayed.
  auto active = nodes_[0]->httpGet("127.0.0.1:15000", "/stats/connections");
  ASSERT_TRUE(active);
  EXPECT_EQ(json::parse(*active)["active"], 20);
  EXPECT_TRUE(hold->running());
}

TEST_F(CanaryE2eTest, ControllerDownNodesServeAndResyncWhenItReturns) {
  // Connections established before the controller goes away must survive all of it.
  auto hold = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "hold", "--to",
                                                     std::string(kVip) + ":80", "--count", "10"},
                                            .captureOutput = true,
                                            .feedStdin = true});
  ASSERT_TRUE(hold);
  auto held = readLine(hold->stdoutPipe(), std::chrono::seconds(30));
  ASSERT_TRUE(held && *held == "held 10");
  ASSERT_TRUE(controller_.process().signal(SIGKILL));
  ASSERT_TRUE(controller_.process().wait(std::chrono::seconds(10)));
  json during = crr(100);
  EXPECT_EQ(during.value("failed", -1), 0) << during.dump();
  writeConfig(50, 50);  // changed while the controller is down
  ASSERT_NO_FATAL_FAILURE(startController());
  EXPECT_TRUE(waitForSplit(50, 50)) << "nodes did not resync after the controller came back";
  auto active = nodes_[0]->httpGet("127.0.0.1:15000", "/stats/connections");
  ASSERT_TRUE(active);
  EXPECT_EQ(json::parse(*active)["active"], 10) << "connections were dropped across the controller's restart";
  // Resumption: the nodes presented their versions, so the controller sent only the change.
  auto status = nodes_[0]->httpGet("127.0.0.1:15014", "/debug/nodes");
  ASSERT_TRUE(status);
  json nodes = json::parse(*status)["nodes"];
  EXPECT_EQ(nodes.size(), 2u) << *status;
  for (const auto& n : nodes) {
    // The changed VirtualService alone is ~100 B; the five resources together are several times that.
    EXPECT_LT(n["bytesSent"].get<uint64_t>(), 200u) << "more than the change was resent: " << n.dump();
  }
}

TEST_F(CanaryE2eTest, BadPolicyIsRefusedAndThePreviousOneKeepsWorking) {
  // Several kinds of bad input, one after the other; each is refused and 90/10 stays.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"weights add up to 110", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
                                "spec: {hosts: [web], tcp: [{route: [{destination: {host: web, subset: v1}, weight: 90}, "
                                "{destination: {host: web, subset: v2}, weight: 20}]}]}\n"},
      {"not supported by Sluice", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
                                  "spec: {hosts: [web], exportTo: ['.'], tcp: [{route: [{destination: {host: web}}]}]}\n"},
      {"not valid YAML", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: [unclosed\n"},
  };
  for (const auto& [why, yaml] : bad) {
    writeConfig(90, 10, yaml);
    std::string status;
    for (int i = 0; i < 100 && status.find(why) == std::string::npos; ++i) {
      ::usleep(100000);
      auto body = nodes_[0]->httpGet("127.0.0.1:15014", "/debug/nodes");
      status = body.value_or("");
    }
    EXPECT_NE(status.find(why), std::string::npos) << why << ": " << status;
    EXPECT_TRUE(waitForSplit(90, 10, std::chrono::seconds(2))) << why;
  }
  json result = crr(100);
  EXPECT_EQ(result.value("failed", -1), 0) << result.dump();
  // Fixed again: the change goes through.
  writeConfig(80, 20);
  EXPECT_TRUE(waitForSplit(80, 20));
}

}  // namespace
}  // namespace sluice::controller
