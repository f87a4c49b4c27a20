// Node credentials end to end: the real controller with its CA and short-lived node
// credentials (12 s: renewed every 6 s), the real tunnels renewing them, and `sluice-controller
// revoke-node` cutting a node off.
#include <gtest/gtest.h>

#include <filesystem>

#include "simcluster/canary_config.h"
#include "simcluster/mesh_controller.h"
#include "support/mesh_fixture.h"
#include "support/privileged.h"
#include "support/tunnel_stats.h"
#include "sluice/common/files.h"

namespace sluice::ztunnel {
namespace {

using nlohmann::json;
using sim::withPort;

constexpr int kNodeCredentialSeconds = 12;

class NodeCredentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto mesh = startMesh({.nodeCredentialValiditySeconds = kNodeCredentialSeconds});
    ASSERT_TRUE(mesh) << mesh.error().message();
    mesh_ = std::move(*mesh);
    ASSERT_TRUE(mesh_.cluster->addPod(0, "client", {.ns = "shop", .serviceAccount = "web", .labels = {{"app", "web"}}}));
    ASSERT_TRUE(mesh_.cluster->addPod(1, "server", {.ns = "shop", .serviceAccount = "db", .labels = {{"app", "db"}}}));
    auto echo = startEcho(*mesh_.cluster, "server");
    ASSERT_TRUE(echo) << echo.error().message();
    echo_ = std::move(*echo);
    publishWorkloads();
    ASSERT_TRUE(sim::waitForPodCertificates(*mesh_.cluster, mesh_.nodes, {"client", "server"}));
  }
  void TearDown() override {
    mesh_.nodes.clear();
    (void)mesh_.controller.stop();
  }
  void publishWorkloads() {
    ASSERT_TRUE(sim::writeConfigFile(mesh_.controller.configDir(), "workloads.yaml", sim::workloadsYaml(*mesh_.cluster)));
  }
  json nodeCredential(int node) {
    auto dump = mesh_.nodes[static_cast<size_t>(node)]->configDump();
    return dump && dump->contains("nodeCredential") ? (*dump)["nodeCredential"] : json::object();
  }
  // The certificate entry of `identity` in node `node`'s tunnel (an empty object when absent).
  json certificate(int node, const std::string& identity) {
    auto dump = mesh_.nodes[static_cast<size_t>(node)]->configDump();
    if (!dump) return json::object();
    json certificates = (*dump)["certificates"];
    for (const auto& c : certificates) {
      if (c["identity"] == identity) return c;
    }
    return json::object();
  }
  // A new pod (echo server) with its own service account on `node`: its identity is one the
  // tunnel must fetch now, over the link as it is now.
  void addPodWithNewIdentity(int node, const std::string& name) {
    ASSERT_TRUE(mesh_.cluster->addPod(node, name, {.ns = "shop", .serviceAccount = name, .labels = {{"app", name}}}));
    publishWorkloads();
  }
  // 1,000 bytes from the client pod to `to`:8080 and back.
  bool echoes(const std::string& to) {
    auto out = mesh_.cluster->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", withPort(to, 8080),
                                                           "--bytes", "1000"},
                                                  .captureOutput = true});
    if (!out) return false;
    auto done = out->wait(std::chrono::seconds(30));
    return done && *done == 0;
  }
  json controllerNode(const std::string& node) {
    auto body = mesh_.nodes[0]->httpGet("127.0.0.1:15014", "/debug/nodes");
    if (!body) return json::object();
    json status = json::parse(*body, nullptr, false);
    if (status.is_discarded()) return json::object();
    json nodes = status["nodes"];
    for (const auto& n : nodes) {
      if (n["node"] == node) return n;
    }
    return json::object();
  }

  sim::MeshRun mesh_;
  ChildProcess echo_;
};

TEST_F(NodeCredentialTest, TunnelsRenewTheirCredentialAndKeepWorkingAfterTheFirstOneExpired) {
  std::string folder = mesh_.cluster->node(1).stateDir + "/credential";
  auto bootstrap = readFile(folder + "/node-cert.pem");
  ASSERT_TRUE(bootstrap);
  // Three renewals (every 6 s) on each node: past the bootstrap credential's expiry (12 s).
  for (int node : {0, 1}) {
    EXPECT_TRUE(waitFor([&] { return nodeCredential(node).value("renewals", 0) >= 3; }, std::chrono::seconds(2 * kNodeCredentialSeconds + 4)))
        << "node" << node << ": " << nodeCredential(node).dump();
    EXPECT_EQ(nodeCredential(node).value("failures", -1), 0) << nodeCredential(node).dump();
  }
  // Written back for the next start.
  auto renewed = readFile(folder + "/node-cert.pem");
  ASSERT_TRUE(renewed);
  EXPECT_NE(*renewed, *bootstrap);
  // A certificate fetched now goes over a connection authenticated with a renewed credential
  // (the bootstrap one has expired), and it works end to end.
  addPodWithNewIdentity(1, "fresh");
  ASSERT_TRUE(sim::waitForPodCertificates(*mesh_.cluster, mesh_.nodes, {"fresh"}))
      << certificate(1, "spiffe://cluster.local/ns/shop/sa/fresh").dump();
  auto fresh = startEcho(*mesh_.cluster, "fresh");
  ASSERT_TRUE(fresh) << fresh.error().message();
  std::string freshIp = mesh_.cluster->pod("fresh")->ipv4;
  EXPECT_TRUE(waitFor([&] { return echoes(freshIp); }, std::chrono::seconds(15)));
  // The controller still sees both nodes subscribed.
  EXPECT_TRUE(controllerNode("node1").value("connected", false)) << controllerNode("node1").dump();
}

TEST_F(NodeCredentialTest, ARevokedNodeGetsNoCertificateNoRenewalAndNoConfiguration) {
  ASSERT_TRUE(waitFor([&] { return controllerNode("node1").value("connected", false); }, std::chrono::seconds(10)));
  ASSERT_TRUE(waitFor([&] { return echoes(mesh_.cluster->pod("server")->ipv4); }, std::chrono::seconds(15)))
      << "mesh traffic before the revocation";
  ASSERT_TRUE(mesh_.controller.revokeNode("node1"));
  // Its discovery stream is cancelled and it cannot subscribe again.
  EXPECT_TRUE(waitFor([&] { return !controllerNode("node1").value("connected", true); }, std::chrono::seconds(5)))
      << controllerNode("node1").dump();
  // A new identity on node1 is never issued; the refusal names the revocation.
  addPodWithNewIdentity(1, "late");
  const std::string late = "spiffe://cluster.local/ns/shop/sa/late";
  EXPECT_TRUE(waitFor([&] { return certificate(1, late).value("lastError", "").find("node node1 was revoked") != std::string::npos; },
                      std::chrono::seconds(15)))
      << certificate(1, late).dump();
  EXPECT_EQ(certificate(1, late).value("state", ""), "pending");
  // Its renewal is refused too (due within 6 s of its last one).
  EXPECT_TRUE(waitFor([&] { return nodeCredential(1).value("lastError", "").find("node node1 was revoked") != std::string::npos; },
                      std::chrono::seconds(kNodeCredentialSeconds)))
      << nodeCredential(1).dump();
  // Every tunnel refuses the workload certificates node1 holds (issued to it before the
  // revocation): node0's client can no longer reach node1's server, even over the HBONE
  // connection it had pooled before.
  EXPECT_TRUE(waitFor([&] { return !echoes(mesh_.cluster->pod("server")->ipv4); }, std::chrono::seconds(15)))
      << "node0 still reaches a workload of the revoked node";
  // node0 is unaffected: a new identity there is issued, and it stays subscribed.
  addPodWithNewIdentity(0, "other");
  EXPECT_TRUE(sim::waitForPodCertificates(*mesh_.cluster, mesh_.nodes, {"other"}));
  EXPECT_TRUE(controllerNode("node0").value("connected", false));
  EXPECT_FALSE(controllerNode("node1").value("connected", true));
}

}  // namespace
}  // namespace sluice::ztunnel
