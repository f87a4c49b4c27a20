// The node agent end to end: pods created through the CNI chain (bridge, then sluice-cni), the
// real sluice-agent on each node, the tunnel's stand-in, sluicectl, real traffic.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "simcluster/cluster.h"
#include "simcluster/mesh_node.h"
#include "support/privileged.h"

namespace sluice::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sim::Cluster;
using NodeServices = sim::MeshNode;

using sim::withPort;

bool sendFrom(const Cluster& cluster, const std::string& pod, const std::string& to) {
  auto child = cluster.runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", to, "--bytes", "50000"},
                                      .captureOutput = true});
  if (!child) return false;
  auto line = readLine(child->stdoutPipe(), std::chrono::seconds(20));
  auto code = child->wait(std::chrono::seconds(10));
  return line && code && *code == 0;
}

auto acceptedFor(const std::string& pod, int listener) {
  return [pod, listener](const json& e) {
    return e.contains("accepted") && e["accepted"].value("pod", "") == pod && e["accepted"].value("listener", 0) == listener;
  };
}

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto cluster = sim::createMeshCluster(2);
    ASSERT_TRUE(cluster) << cluster.error().message();
    cluster_ = std::move(*cluster);
    auto nodes = sim::startMeshNodes(*cluster_, NodeServices::Tunnel::kTestStandin);
    ASSERT_TRUE(nodes) << nodes.error().message();
    nodes_ = std::move(*nodes);
    for (auto& node : nodes_) ASSERT_TRUE(node->waitForEvent([](const json& e) { return e.contains("snapshot"); }));
  }
  void TearDown() override { nodes_.clear(); }

  void startEcho(const std::string& pod, int port) {
    auto echo = cluster_->runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen",
                                                  "[::]:" + std::to_string(port)},
                                         .captureOutput = true});
    ASSERT_TRUE(echo);
    ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(10)));
    echoes_.push_back(std::move(*echo));
  }

  json ctlJson(int node, std::vector<std::string> args) {
    args.insert(args.begin(), {"-o", "json"});
    auto out = nodes_[node]->sluicectl(args);
    EXPECT_TRUE(out);
    if (!out) return {};
    EXPECT_EQ(out->exitCode, 0) << out->err;
    return json::parse(out->out, nullptr, false);
  }

  std::unique_ptr<Cluster> cluster_;
  std::vector<std::unique_ptr<NodeServices>> nodes_;
  std::vector<ChildProcess> echoes_;
};

TEST_F(AgentE2eTest, PodsEnrolledThroughCniAreCapturedBothWays) {
  ASSERT_TRUE(cluster_->addPod(0, "client", {.ns = "shop"}));
  ASSERT_TRUE(cluster_->addPod(1, "server", {.ns = "shop", .serviceAccount = "api"}));
  ASSERT_TRUE(cluster_->addPod(1, "plain", {.ns = "shop", .labels = {{"istio.io/dataplane-mode", "none"}}}));
  ASSERT_TRUE(cluster_->addPod(0, "outsider", {.ns = "shop", .annotations = {{"sluice.io/capture", "disabled"}}}));
  const sim::Pod* server = cluster_->pod("server");
  const sim::Pod* plain = cluster_->pod("plain");
  startEcho("server", 8080);
  startEcho("plain", 8080);

  // Outbound from an enrolled pod lands on its node's tunnel with the original destination.
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(plain->ipv4, 8080)));
  auto out = nodes_[0]->waitForEvent(acceptedFor("shop/client", 15001));
  ASSERT_TRUE(out);
  EXPECT_EQ((*out)["accepted"].value("origDst", ""), withPort(plain->ipv4, 8080));

  // Inbound to an enrolled pod from an opted-out pod lands on the server's tunnel (15006).
  EXPECT_TRUE(sendFrom(*cluster_, "outsider", withPort(server->ipv6, 8080)));
  auto in = nodes_[1]->waitForEvent(acceptedFor("shop/server", 15006));
  ASSERT_TRUE(in);
  EXPECT_EQ((*in)["accepted"].value("local", ""), withPort(server->ipv6, 8080));

  // Opted-out pods are untouched both ways: outsider -> plain reaches plain's app directly.
  size_t before = nodes_[0]->eventCount() + nodes_[1]->eventCount();
  EXPECT_TRUE(sendFrom(*cluster_, "outsider", withPort(plain->ipv4, 8080)));
  EXPECT_EQ(nodes_[0]->eventCount() + nodes_[1]->eventCount(), before);

  json pods = ctlJson(0, {"pods"});
  ASSERT_TRUE(pods.is_array());
  ASSERT_EQ(pods.size(), 2u);
  for (const auto& p : pods) {
    if (p["name"] == "client") {
      EXPECT_TRUE(p["redirect"].get<bool>());
      EXPECT_EQ(p["counters"]["redirected"], 1);
      EXPECT_EQ(p["namespace"], "shop");
    } else {
      EXPECT_TRUE(p["optedOut"].get<bool>());
      EXPECT_NE(p["optOutReason"].get<std::string>().find("sluice.io/capture"), std::string::npos);
    }
  }
  json detail = ctlJson(1, {"pod", "shop/server"});
  EXPECT_EQ(detail["serviceAccount"], "api");
  EXPECT_EQ(detail["counters"]["inbound_captured"], 1);
}

TEST_F(AgentE2eTest, SluicectlStatusExplainAndErrors) {
  ASSERT_TRUE(cluster_->addPod(0, "client", {.annotations = {{"traffic.sidecar.istio.io/excludeOutboundPorts", "5432"}}}));
  json status = ctlJson(0, {"status"});
  EXPECT_TRUE(status["tunnelConnected"].get<bool>());
  EXPECT_EQ(status["pods"], 1);
  bool sawConnect4 = false, sawSkLookup = false;
  for (const auto& a : status["attachPoints"]) {
    if (a["program"] == "sluice_connect4") sawConnect4 = a["target"] == cluster_->node(0).cgroupPath;
    if (a["program"] == "sluice_pod_sk_lookup") sawSkLookup = true;
  }
  EXPECT_TRUE(sawConnect4) << status.dump();
  EXPECT_TRUE(sawSkLookup) << status.dump();

  json redirected = ctlJson(0, {"explain", "--pod", "default/client", "--to", "10.244.1.9:80"});
  EXPECT_TRUE(redirected["redirected"].get<bool>());
  json excluded = ctlJson(0, {"explain", "--pod", "default/client", "--to", "10.244.1.9:5432"});
  EXPECT_FALSE(excluded["redirected"].get<bool>());
  EXPECT_EQ(excluded["reason"], "excluded_port");
  json loop = ctlJson(0, {"explain", "--pod", "default/client", "--to", "[::1]:80"});
  EXPECT_EQ(loop["reason"], "excluded_loopback");

  auto missing = nodes_[0]->sluicectl({"pod", "default/nope"});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->exitCode, 1);
  EXPECT_NE(missing->err.find("no pod default/nope on node node0"), std::string::npos) << missing->err;
  auto badTo = nodes_[0]->sluicectl({"explain", "--pod", "default/client", "--to", "nonsense"});
  ASSERT_TRUE(badTo);
  EXPECT_EQ(badTo->exitCode, 1);
  EXPECT_NE(badTo->err.find("missing :port"), std::string::npos) << badTo->err;
  // destinations reads the tunnel's admin endpoint: nothing listens on port 1, and a bad
  // address is named.
  auto noTunnel = nodes_[0]->sluicectl({"destinations", "--admin", "127.0.0.1:1"});
  ASSERT_TRUE(noTunnel);
  EXPECT_EQ(noTunnel->exitCode, 2);
  EXPECT_NE(noTunnel->err.find("cannot reach the tunnel's admin endpoint at 127.0.0.1:1"), std::string::npos) << noTunnel->err;
  auto badAdmin = nodes_[0]->sluicectl({"destinations", "--admin", "nonsense"});
  ASSERT_TRUE(badAdmin);
  EXPECT_EQ(badAdmin->exitCode, 2);
  EXPECT_NE(badAdmin->err.find("--admin 'nonsense' is not HOST:PORT"), std::string::npos) << badAdmin->err;

  ASSERT_TRUE(nodes_[0]->stopAgent());
  auto noAgent = nodes_[0]->sluicectl({"status"});
  ASSERT_TRUE(noAgent);
  EXPECT_EQ(noAgent->exitCode, 2);
  EXPECT_NE(noAgent->err.find("is sluice-agent running"), std::string::npos) << noAgent->err;
}

TEST_F(AgentE2eTest, TraceShowsLiveDecisionsOnlyWhileSomeoneWatches) {
  ASSERT_TRUE(cluster_->addPod(0, "client"));
  ASSERT_TRUE(cluster_->addPod(1, "server", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
  const sim::Pod* server = cluster_->pod("server");
  startEcho("server", 8080);
  EXPECT_EQ(ctlJson(0, {"status"})["traceSubscribers"], 0);
  auto trace = spawn({.argv = {siblingProgram("sluicectl"), "--socket", nodes_[0]->agentSocket(), "-o", "json",
                               "trace", "--pod", "default/client"},
                      .captureOutput = true});
  ASSERT_TRUE(trace);
  for (int i = 0; i < 200 && ctlJson(0, {"status"})["traceSubscribers"] != 1; ++i) ::usleep(10000);
  ASSERT_EQ(ctlJson(0, {"status"})["traceSubscribers"], 1);
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 8080)));
  auto line = readLine(trace->stdoutPipe(), std::chrono::seconds(10));
  ASSERT_TRUE(line) << line.error().message();
  json event = json::parse(*line);
  EXPECT_EQ(event["pod"], "default/client");
  EXPECT_EQ(event["hook"], "connect4");
  EXPECT_EQ(event["decision"], "redirected");
  EXPECT_EQ(event["dst"], withPort(server->ipv4, 8080));
  EXPECT_EQ(event["comm"], "sluice-tcpcheck");
  ASSERT_TRUE(trace->stop(std::chrono::seconds(5)));
  for (int i = 0; i < 200 && ctlJson(0, {"status"})["traceSubscribers"] != 0; ++i) ::usleep(10000);
  EXPECT_EQ(ctlJson(0, {"status"})["traceSubscribers"], 0) << "tracing is switched off when the last reader leaves";
}

TEST_F(AgentE2eTest, ExplainAgreesWithTheKernel) {
  ASSERT_TRUE(cluster_->addPod(0, "client", {.annotations = {{"traffic.sidecar.istio.io/excludeOutboundPorts", "8081"}}}));
  ASSERT_TRUE(cluster_->addPod(1, "server", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
  const sim::Pod* server = cluster_->pod("server");
  startEcho("server", 8080);
  startEcho("server", 8081);
  for (int port : {8080, 8081}) {
    json verdict = ctlJson(0, {"explain", "--pod", "default/client", "--to", withPort(server->ipv4, port)});
    size_t before = nodes_[0]->eventCount();
    EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, port)));
    bool captured = nodes_[0]->waitForEvent(acceptedFor("default/client", 15001), before, std::chrono::seconds(2)).has_value();
    EXPECT_EQ(captured, verdict["redirected"].get<bool>()) << verdict.dump();
  }
}

TEST_F(AgentE2eTest, WithoutATunnelPodCreationFailsWithAClearError) {
  ASSERT_TRUE(nodes_[0]->stopTunnel());
  auto pod = cluster_->addPod(0, "lonely");
  ASSERT_FALSE(pod);
  EXPECT_NE(pod.error().message().find("no tunnel (ztunnel) connected"), std::string::npos) << pod.error().message();
  EXPECT_NE(pod.error().message().find("code 100"), std::string::npos) << pod.error().message();
  json pods = ctlJson(0, {"pods"});
  EXPECT_TRUE(pods.empty()) << pods.dump();
}

TEST_F(AgentE2eTest, BadAnnotationFailsPodCreationNamingIt) {
  auto pod = cluster_->addPod(0, "typo", {.annotations = {{"traffic.sidecar.istio.io/excludeOutboundPorts", "postgres"}}});
  ASSERT_FALSE(pod);
  EXPECT_NE(pod.error().message().find("excludeOutboundPorts: 'postgres' is not a port"), std::string::npos)
      << pod.error().message();
}

TEST_F(AgentE2eTest, DeleteRestoresDirectTrafficAndLeavesNoPins) {
  ASSERT_TRUE(cluster_->addPod(0, "client"));
  ASSERT_TRUE(cluster_->addPod(1, "server", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
  const sim::Pod* server = cluster_->pod("server");
  startEcho("server", 8080);
  json before = ctlJson(0, {"pod", "default/client"});
  uint64_t cookie = before["netnsCookie"].get<uint64_t>();
  std::string linkPin = cluster_->node(0).bpffsDir + "/v1/links/sk_lookup/" + std::to_string(cookie);
  EXPECT_TRUE(fs::exists(linkPin));
  ASSERT_TRUE(cluster_->removePod("client"));
  ASSERT_TRUE(nodes_[0]->waitForEvent([](const json& e) { return e.value("removed", "") == "default/client"; }));
  // Its capture goes once its namespace is gone (the agent checks every second).
  for (int i = 0; i < 50 && fs::exists(linkPin); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(fs::exists(linkPin));
  json status = ctlJson(0, {"status"});
  for (const auto& m : status["maps"]) {
    if (m["name"] == "sluice_settings") continue;
    EXPECT_EQ(m["entries"], 0) << m.dump();
  }
  // The same pod name again, now unenrolled by opt-out: traffic goes direct.
  ASSERT_TRUE(cluster_->addPod(0, "client", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
  size_t events = nodes_[0]->eventCount();
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 8080)));
  EXPECT_EQ(nodes_[0]->eventCount(), events);
}

TEST_F(AgentE2eTest, AgentRestartKeepsRedirectionAndState) {
  ASSERT_TRUE(cluster_->addPod(0, "client"));
  ASSERT_TRUE(cluster_->addPod(1, "server", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
  const sim::Pod* server = cluster_->pod("server");
  startEcho("server", 8080);
  json pods = ctlJson(0, {"pods"});

  ASSERT_TRUE(nodes_[0]->killAgent());  // no chance to clean up: pins must carry capture
  size_t events = nodes_[0]->eventCount();
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 8080)));
  EXPECT_TRUE(nodes_[0]->waitForEvent(acceptedFor("default/client", 15001), events));

  ASSERT_TRUE(nodes_[0]->startAgent());
  // The tunnel reconnects and gets the replay: its existing pod is kept, not duplicated.
  ASSERT_TRUE(nodes_[0]->waitForEvent([](const json& e) { return e.value("kept", "") == "default/client"; }, events));
  ASSERT_TRUE(nodes_[0]->waitForEvent([](const json& e) { return e.contains("snapshot") && e["snapshot"] == 1; }, events));
  json after = ctlJson(0, {"pods"});
  ASSERT_EQ(after.size(), pods.size());
  for (const char* key : {"uid", "name", "namespace", "netnsCookie", "addresses", "redirect"}) {
    EXPECT_EQ(after[0][key], pods[0][key]) << key;
  }
  EXPECT_EQ(after[0]["counters"]["redirected"], 1) << "counters survive in the pinned map";
  json status = ctlJson(0, {"status"});
  EXPECT_TRUE(status["adoptedPins"].get<bool>());
  events = nodes_[0]->eventCount();
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv6, 8080)));
  EXPECT_TRUE(nodes_[0]->waitForEvent(acceptedFor("default/client", 15001), events));
}

TEST_F(AgentE2eTest, TunnelRestartGetsEveryPodReplayed) {
  ASSERT_TRUE(cluster_->addPod(1, "server"));
  ASSERT_TRUE(cluster_->addPod(0, "client", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
  const sim::Pod* server = cluster_->pod("server");
  startEcho("server", 8080);
  size_t events = nodes_[1]->eventCount();
  ASSERT_TRUE(nodes_[1]->startTunnel(NodeServices::Tunnel::kTestStandin));  // stops the old one, starts a new one
  ASSERT_TRUE(nodes_[1]->waitForEvent([](const json& e) { return e.value("added", "") == "default/server"; }, events));
  ASSERT_TRUE(nodes_[1]->waitForEvent([](const json& e) { return e.contains("snapshot"); }, events));
  // The new tunnel's inbound listener is the one in the socket map.
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 8080)));
  EXPECT_TRUE(nodes_[1]->waitForEvent(acceptedFor("default/server", 15006)));
}

}  // namespace
}  // namespace sluice::agent
