// The simulated cluster, for real: namespaces, veths, CNI reference plugins, cgroups.
#include "simcluster/cluster.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include "support/privileged.h"

namespace sluice::sim {
namespace {

namespace fs = std::filesystem;

std::string tcpcheck() { return siblingProgram("sluice-tcpcheck"); }

std::string withPort(const std::string& ip, int port) {
  return ip.find(':') == std::string::npos ? ip + ":" + std::to_string(port)
                                           : "[" + ip + "]:" + std::to_string(port);
}

// Runs the checking client inside `pod` against `to`; returns its JSON line.
std::string sendFrom(Cluster& cluster, const std::string& pod, const std::string& to, uint64_t bytes,
                     int& exitCode) {
  auto child = cluster.runInPod(pod, {.argv = {tcpcheck(), "send", "--to", to, "--bytes",
                                               std::to_string(bytes), "--seed", "42"},
                                      .captureOutput = true});
  EXPECT_TRUE(child) << child.error().message();
  if (!child) return {};
  auto line = readLine(child->stdoutPipe(), std::chrono::seconds(60));
  auto code = child->wait(std::chrono::seconds(10));
  exitCode = code.value_or(-1);
  return line.value_or("");
}

// Starts `sluice-sim up` with one pod per node and waits until its cluster is complete.
void startSimUp(int nodes, ChildProcess& sim, std::string& prefix) {
  auto started = spawn({.argv = {siblingProgram("sluice-sim"), "up", "--nodes", std::to_string(nodes),
                                 "--pods", "1"},
                        .captureOutput = true});
  ASSERT_TRUE(started) << started.error().message();
  sim = std::move(*started);
  for (;;) {
    auto line = readLine(sim.stdoutPipe(), std::chrono::seconds(60));
    ASSERT_TRUE(line) << line.error().message();
    if (line->rfind("cluster ", 0) == 0) prefix = line->substr(8, 8);
    if (*line == "running; Ctrl-C or SIGTERM removes it") break;
  }
  ASSERT_TRUE(isRunPrefix(prefix)) << prefix;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_REQUIRE_PRIVILEGES(); }
};

TEST_F(ClusterTest, PodsOnDifferentNodesExchangeBytesExactlyOverIpv4AndIpv6) {
  auto cluster = Cluster::create({.nodes = 2});
  ASSERT_TRUE(cluster) << cluster.error().message();
  auto client = (*cluster)->addPod(0, "client");
  ASSERT_TRUE(client) << client.error().message();
  auto server = (*cluster)->addPod(1, "server");
  ASSERT_TRUE(server) << server.error().message();

  // Addresses come from each node's own pod CIDR, assigned by host-local IPAM.
  EXPECT_EQ((*client)->ipv4.rfind("10.244.0.", 0), 0u) << (*client)->ipv4;
  EXPECT_EQ((*server)->ipv4.rfind("10.244.1.", 0), 0u) << (*server)->ipv4;
  EXPECT_EQ((*server)->ipv6.rfind("fd00:10:244:1::", 0), 0u) << (*server)->ipv6;

  auto echo = (*cluster)->runInPod("server", {.argv = {tcpcheck(), "serve", "--listen", "[::]:9000"},
                                              .captureOutput = true});
  ASSERT_TRUE(echo) << echo.error().message();
  auto ready = readLine(echo->stdoutPipe(), std::chrono::seconds(10));
  ASSERT_TRUE(ready) << ready.error().message();

  for (const auto& ip : {(*server)->ipv4, (*server)->ipv6}) {
    int code = -1;
    std::string result = sendFrom(**cluster, "client", withPort(ip, 9000), 16 << 20, code);
    EXPECT_EQ(code, 0) << result;
    EXPECT_NE(result.find("\"ok\":true"), std::string::npos) << result;
    EXPECT_NE(result.find("\"received\":16777216"), std::string::npos) << result;
  }
}

TEST_F(ClusterTest, ChecksumMismatchIsDetectedByTheChecker) {
  // The checker must be able to fail: against a server that does not echo but sends other
  // bytes, it reports a mismatch. (nc -l answers with a fixed line.)
  auto cluster = Cluster::create({.nodes = 2});
  ASSERT_TRUE(cluster) << cluster.error().message();
  ASSERT_TRUE((*cluster)->addPod(0, "client"));
  auto server = (*cluster)->addPod(1, "server");
  ASSERT_TRUE(server);
  auto liar = (*cluster)->runInPod(
      "server", {.argv = {"sh", "-c", "printf 'not the same bytes' | nc -l -N 9001 >/dev/null"}});
  ASSERT_TRUE(liar);
  int code = -1;
  std::string result;
  for (int attempt = 0; attempt < 50; ++attempt) {  // until nc listens
    result = sendFrom(**cluster, "client", withPort((*server)->ipv4, 9001), 1000, code);
    if (code != 2) break;
    ::usleep(50000);
  }
  EXPECT_EQ(code, 1) << result;
  EXPECT_NE(result.find("\"ok\":false"), std::string::npos) << result;
}

TEST_F(ClusterTest, ProcessesRunInTheirPodsCgroupAndNamespace) {
  auto cluster = Cluster::create({.nodes = 1});
  ASSERT_TRUE(cluster) << cluster.error().message();
  auto pod = (*cluster)->addPod(0, "web");
  ASSERT_TRUE(pod) << pod.error().message();
  auto child = (*cluster)->runInPod("web", {.argv = {"sh", "-c", "cat /proc/self/cgroup; ip -o -4 addr show eth0"},
                                            .captureOutput = true});
  ASSERT_TRUE(child);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(child->stdoutPipe().get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ASSERT_TRUE(child->wait(std::chrono::seconds(10)));
  std::string cgroupSuffix = (*cluster)->prefix() + "/node0/pods/web";
  EXPECT_NE(out.find(cgroupSuffix), std::string::npos) << out;
  EXPECT_NE(out.find((*pod)->ipv4 + "/24"), std::string::npos) << out;
}

TEST_F(ClusterTest, RemovePodReleasesEverything) {
  auto cluster = Cluster::create({.nodes = 1});
  ASSERT_TRUE(cluster) << cluster.error().message();
  auto pod = (*cluster)->addPod(0, "short-lived");
  ASSERT_TRUE(pod);
  std::string netns = (*pod)->netnsPath, cgroup = (*pod)->cgroupPath;
  // host-local IPAM keeps one file per leased address.
  std::string lease = (*cluster)->paths().stateRoot + "/" + (*cluster)->prefix() +
                      "/ipam/node0/sluice-sim/" + (*pod)->ipv4;
  ASSERT_TRUE(fs::exists(lease)) << lease;
  auto sleeper = (*cluster)->runInPod("short-lived", {.argv = {"sleep", "60"}});
  ASSERT_TRUE(sleeper);
  ASSERT_TRUE((*cluster)->removePod("short-lived"));
  EXPECT_FALSE(fs::exists(netns));
  EXPECT_FALSE(fs::exists(cgroup));
  EXPECT_EQ((*cluster)->pod("short-lived"), nullptr);
  // The process was killed with its pod.
  auto code = sleeper->wait(std::chrono::seconds(5));
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, 128 + SIGKILL);
  // CNI DEL released the address lease.
  EXPECT_FALSE(fs::exists(lease)) << lease;
}

TEST_F(ClusterTest, BadInputIsRefusedWithAClearError) {
  auto cluster = Cluster::create({.nodes = 1});
  ASSERT_TRUE(cluster);
  auto badNode = (*cluster)->addPod(5, "x");
  ASSERT_FALSE(badNode);
  EXPECT_NE(badNode.error().message().find("no node 5"), std::string::npos);
  auto badName = (*cluster)->addPod(0, "Bad_Name");
  ASSERT_FALSE(badName);
  EXPECT_NE(badName.error().message().find("names are"), std::string::npos);
  ASSERT_TRUE((*cluster)->addPod(0, "dup"));
  EXPECT_FALSE((*cluster)->addPod(0, "dup"));
  EXPECT_FALSE(Cluster::create({.nodes = 0}));
}

TEST_F(ClusterTest, FailingCniPluginLeavesNothingHalfDone) {
  // A chained plugin that fails: pod creation fails with the plugin's CNI error, and the pod's
  // namespace and cgroup are gone.
  auto cluster = Cluster::create({.nodes = 1, .chainedPlugins = {nlohmann::json{{"type", "no-such-plugin"}}}});
  ASSERT_TRUE(cluster) << cluster.error().message();
  auto pod = (*cluster)->addPod(0, "doomed");
  ASSERT_FALSE(pod);
  EXPECT_NE(pod.error().message().find("no-such-plugin"), std::string::npos) << pod.error().message();
  EXPECT_EQ((*cluster)->pod("doomed"), nullptr);
  auto objects = objectsOfRun((*cluster)->paths(), (*cluster)->prefix());
  for (const auto& object : objects) EXPECT_EQ(object.find("doomed"), std::string::npos) << object;
}

TEST_F(ClusterTest, DestroyRemovesEveryObject) {
  auto cluster = Cluster::create({.nodes = 2});
  ASSERT_TRUE(cluster);
  ASSERT_TRUE((*cluster)->addPod(0, "a"));
  ASSERT_TRUE((*cluster)->addPod(1, "b"));
  ASSERT_TRUE((*cluster)->runInPod("a", {.argv = {"sleep", "60"}}));  // killed with the run
  SimPaths paths = (*cluster)->paths();
  std::string prefix = (*cluster)->prefix();
  EXPECT_FALSE(objectsOfRun(paths, prefix).empty());
  ASSERT_TRUE((*cluster)->destroy());
  auto left = objectsOfRun(paths, prefix);
  EXPECT_TRUE(left.empty()) << left.front();
}

TEST_F(ClusterTest, AKilledRunIsRemovedByTheNextStart) {
  ChildProcess sim;
  std::string prefix;
  ASSERT_NO_FATAL_FAILURE(startSimUp(2, sim, prefix));
  ASSERT_TRUE(sim.signal(SIGKILL));
  ASSERT_TRUE(sim.wait(std::chrono::seconds(10)));

  auto paths = detectSimPaths();
  ASSERT_TRUE(paths);
  EXPECT_FALSE(runIsLive(*paths, prefix));
  EXPECT_FALSE(objectsOfRun(*paths, prefix).empty()) << "a killed run leaves objects behind";

  auto next = Cluster::create({.nodes = 1});
  ASSERT_TRUE(next) << next.error().message();
  auto left = objectsOfRun(*paths, prefix);
  EXPECT_TRUE(left.empty()) << left.front();
}

TEST_F(ClusterTest, GracefulStopOfTheToolCleansUp) {
  ChildProcess sim;
  std::string prefix;
  ASSERT_NO_FATAL_FAILURE(startSimUp(1, sim, prefix));
  ASSERT_TRUE(sim.signal(SIGTERM));
  auto code = sim.wait(std::chrono::seconds(30));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  auto paths = detectSimPaths();
  ASSERT_TRUE(paths);
  auto left = objectsOfRun(*paths, prefix);
  EXPECT_TRUE(left.empty()) << left.front();
}

TEST_F(ClusterTest, TheDemoRunsEndToEnd) {
  auto out = run({.argv = {siblingProgram("sluice-sim"), "demo", "--bytes", "1000000"}}, {},
                 std::chrono::seconds(120));
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(out->exitCode, 0) << out->out << out->err;
  size_t first = out->out.find("echoed byte for byte");
  ASSERT_NE(first, std::string::npos) << out->out;
  EXPECT_NE(out->out.find("echoed byte for byte", first + 1), std::string::npos) << out->out;
  EXPECT_NE(out->out.find("the capture is invisible to the app"), std::string::npos) << out->out;
  EXPECT_NE(out->out.find("removed"), std::string::npos) << out->out;
}

}  // namespace
}  // namespace sluice::sim
