// Upgrades that fail no connection: a node's ztunnel is replaced ten times (a new one starts
// beside it, the agent hands every pod over, the old one drains and exits) while a client pod
// opens over 1,000 new connections per second through the mesh (HBONE between two nodes) and
// keeps 100 long-lived connections echoing (every 200 ms each).
//
// The new connections go to two server pods in turn: the server tunnel closes its side of each
// delivered connection first (it relays the client's half-close), so each one leaves a TIME_WAIT
// in the server pod for 60 s, and one source pod reaches one app port at most ~470 times a second
// in steady state (28k ephemeral ports / 60 s; Istio's ztunnel is bound the same way). Two pods
// keep this run, ~25 s at up to 1,600/s, within each pod's ports. No new connection may fail; a long-lived one may end
// only while an old tunnel drains (its deadline), and no byte may come back wrong. Restarting the
// agent under the same load must fail nothing at all.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "simcluster/canary_config.h"
#include "simcluster/mesh_controller.h"
#include "support/mesh_fixture.h"
#include "support/privileged.h"
#include "support/tunnel_stats.h"

namespace sluice::ztunnel {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kUpgrades = 10;
constexpr auto kDrain = 1500ms;  // the tunnels' --drain-timeout-ms
constexpr int kStreams = 100;

int64_t nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// When an old tunnel was draining: from the upgrade's start to the old process's exit.
struct Window {
  int64_t from, to;
};

class UpgradeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto mesh = startMesh({}, [](const sim::Node&) {
      return std::vector<std::string>{"--drain-timeout-ms", std::to_string(kDrain.count())};
    });
    ASSERT_TRUE(mesh) << mesh.error().message();
    mesh_ = std::move(*mesh);
    auto& cluster = *mesh_.cluster;
    ASSERT_TRUE(cluster.addPod(0, "client", {.ns = "shop", .serviceAccount = "web"}));
    for (const char* server : {"server-a", "server-b"}) {
      ASSERT_TRUE(cluster.addPod(1, server, {.ns = "shop", .serviceAccount = "db"}));
      auto echo = startEcho(cluster, server);
      ASSERT_TRUE(echo) << echo.error().message();
      echoes_.push_back(std::move(*echo));
      targets_.push_back(sim::withPort(cluster.pod(server)->ipv4, 8080));
    }
    ASSERT_TRUE(sim::writeConfigFile(mesh_.controller.configDir(), "workloads.yaml", sim::workloadsYaml(cluster)));
    ASSERT_TRUE(sim::waitForPodCertificates(cluster, mesh_.nodes, {"client", "server-a", "server-b"}));
    // Traffic goes over HBONE from the first connection on (the workloads are known).
    ASSERT_TRUE(waitFor([&] { return crr(10) == 0; }, 15s));
  }
  void TearDown() override {
    mesh_.nodes.clear();
    (void)mesh_.controller.stop();
  }

  // `count` connections from the client pod, one after another; the exit code.
  int crr(int count) {
    auto run = mesh_.cluster->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "crr", "--to", targets_[0],
                                                           "--to", targets_[1], "--count", std::to_string(count)}});
    if (!run) return -1;
    return run->wait(30s).value_or(-1);
  }

  Result<ChildProcess> startLoad(std::vector<std::string> args) {
    std::vector<std::string> argv = {siblingProgram("sluice-tcpcheck")};
    argv.insert(argv.end(), args.begin(), args.end());
    return mesh_.cluster->runInPod("client", {.argv = argv, .captureOutput = true});
  }

  // Stops a load tool (SIGTERM) and returns its JSON line.
  json finish(ChildProcess& tool) {
    EXPECT_TRUE(tool.signal(SIGTERM));
    auto line = readLine(tool.stdoutPipe(), 30s);
    EXPECT_TRUE(line) << "no report from the load tool";
    (void)tool.wait(10s);
    json report = json::parse(line.value_or(""), nullptr, false);
    EXPECT_TRUE(report.is_object()) << line.value_or("");
    return report.is_object() ? report : json::object();
  }

  // Runs `disrupt` under load (threads of new connections and kStreams long-lived ones) and
  // checks the load's reports: no failed new connection, at least 1,000 per second, every echo
  // intact; long-lived connections end only inside `windows` (which `disrupt` fills).
  void underLoad(const std::function<void(std::vector<Window>&)>& disrupt) {
    auto churn = startLoad({"crr", "--to", targets_[0], "--to", targets_[1], "--threads", "8", "--seconds", "600"});
    ASSERT_TRUE(churn) << churn.error().message();
    auto streams = startLoad({"streams", "--to", targets_[0], "--count", std::to_string(kStreams), "--seconds", "600",
                              "--interval-ms", "200"});
    ASSERT_TRUE(streams) << streams.error().message();
    std::this_thread::sleep_for(1s);  // both at full speed before the first disruption
    std::vector<Window> windows;
    disrupt(windows);
    std::this_thread::sleep_for(1s);  // and a second after the last
    json churned = finish(*churn);
    json held = finish(*streams);

    std::string when;
    for (const auto& w : windows) when += " [" + std::to_string(w.from) + ", " + std::to_string(w.to) + "]";
    // Where failures were counted, for the reader of a failed run.
    std::string counters;
    for (auto& node : mesh_.nodes) {
      auto dump = node->configDump();
      if (!dump) continue;
      for (const auto& pod : (*dump)["pods"]) counters += " " + pod.value("name", "") + ": " + pod["counters"].dump();
    }
    EXPECT_EQ(churned.value("failed", -1), 0) << "new connections failed: " << churned.dump() << "; disruptions (ns):" << when
                                              << "; tunnel counters:" << counters;
    EXPECT_GE(churned.value("per_second", 0.0), 1000.0) << churned.dump();
    EXPECT_EQ(held.value("reopen_failures", -1), 0) << held.dump();
    EXPECT_EQ(held.value("corrupt", -1), 0) << held.dump();
    EXPECT_GT(held.value("exchanges", 0), 0) << held.dump();
    int outside = 0;
    for (const auto& end : held.value("ends_ns", json::array())) {
      int64_t t = end.get<int64_t>();
      bool inside = std::any_of(windows.begin(), windows.end(), [t](const Window& w) { return t >= w.from && t <= w.to; });
      if (!inside) ++outside;
    }
    EXPECT_EQ(outside, 0) << "long-lived connections ended while no tunnel was draining: " << held.dump();
    std::cout << "load: " << churned.value("connections", 0) << " new connections at " << churned.value("per_second", 0.0)
              << "/s, " << held.value("ends_ns", json::array()).size() << " long-lived ends over " << windows.size()
              << " disruptions\n";
  }

  // Ten upgrades of `node`'s tunnel; each old one must exit within its drain deadline and a
  // margin (the second after the hand-over it waits for late streams, and process exit).
  void upgradeTenTimes(int node) {
    underLoad([&](std::vector<Window>& windows) {
      for (int i = 0; i < kUpgrades; ++i) {
        int64_t from = nowNanos();
        auto upgraded = mesh_.nodes[static_cast<size_t>(node)]->upgradeTunnel(kDrain + 3s);
        windows.push_back({from, nowNanos() + 200'000'000});  // the resets' last packets land
        ASSERT_TRUE(upgraded) << "upgrade " << i + 1 << ": " << upgraded.error().message();
      }
    });
    // The controller saw each successor subscribe before its predecessor left: the node is
    // connected through exactly one stream, not reported gone.
    auto status = mesh_.nodes[0]->httpGet("127.0.0.1:15014", "/debug/nodes");
    ASSERT_TRUE(status) << status.error().message();
    std::string name = mesh_.cluster->node(node).name;
    bool seen = false;
    json nodes = json::parse(*status)["nodes"];  // held: a range-for over a temporary's member dangles
    for (const auto& n : nodes) {
      if (n.value("node", "") != name) continue;
      seen = true;
      EXPECT_TRUE(n.value("connected", false)) << n.dump();
      EXPECT_EQ(n.value("streams", 0), 1) << n.dump();
    }
    EXPECT_TRUE(seen) << *status;
  }

  sim::MeshRun mesh_;
  std::vector<ChildProcess> echoes_;
  std::vector<std::string> targets_;  // the two server pods' echo ports
};

TEST_F(UpgradeTest, TenUpgradesOfTheClientNodesTunnelFailNoNewConnection) { upgradeTenTimes(0); }

TEST_F(UpgradeTest, TenUpgradesOfTheServerNodesTunnelFailNoNewConnection) { upgradeTenTimes(1); }

TEST_F(UpgradeTest, AnUpgradeDuringAControllerOutageLeavesTheOldTunnelServing) {
  // Without its first configuration the new tunnel does not connect to the agent (it would
  // serve the pods without policy): the upgrade does not happen and nothing fails meanwhile.
  ASSERT_TRUE(mesh_.controller.stop());
  pid_t before = mesh_.nodes[0]->tunnelPid();
  underLoad([&](std::vector<Window>&) {
    auto upgraded = mesh_.nodes[0]->upgradeTunnel(kDrain + 3s);
    ASSERT_FALSE(upgraded) << "a tunnel without configuration took the pods over";
    EXPECT_NE(upgraded.error().message().find("the old one keeps serving"), std::string::npos) << upgraded.error().message();
  });
  EXPECT_EQ(mesh_.nodes[0]->tunnelPid(), before);
  auto status = mesh_.nodes[0]->agentStatus();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->value("tunnelPid", 0), before) << status->dump();
}

TEST_F(UpgradeTest, RestartingTheAgentUnderLoadFailsNothing) {
  // Capture is pinned in the kernel and the tunnel keeps serving while no agent runs; the
  // restarted agent adopts the pins and replays the pods to the same tunnel. Nothing may end.
  underLoad([&](std::vector<Window>&) {
    for (int i = 0; i < 3; ++i) {
      for (auto& node : mesh_.nodes) {
        ASSERT_TRUE(node->stopAgent());
        std::this_thread::sleep_for(200ms);
        ASSERT_TRUE(node->startAgent());
      }
    }
  });
}

}  // namespace
}  // namespace sluice::ztunnel
