// ztunnel end to end: two simulated nodes, each with the real sluice-agent and the real
// ztunnel; pods created through the CNI chain; an app in one pod talks to an app in another
// through both tunnels (client -> eBPF capture -> node0 ztunnel -> network -> sk_lookup ->
// node1 ztunnel -> server app), checked byte for byte.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "simcluster/cluster.h"
#include "simcluster/mesh_node.h"
#include "sluice/common/unix_socket.h"
#include "support/privileged.h"
#include "support/tunnel_stats.h"

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
  virtual std::vector<std::string> tunnelArgs() const { return {}; }

  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto cluster = sim::createMeshCluster(2);
    ASSERT_TRUE(cluster) << cluster.error().message();
    cluster_ = std::move(*cluster);
    auto nodes = sim::startMeshNodes(*cluster_, NodeServices::Tunnel::kZtunnel,
                                     [this](const sim::Node&) { return tunnelArgs(); });
    ASSERT_TRUE(nodes) << nodes.error().message();
    nodes_ = std::move(*nodes);
    ASSERT_TRUE(cluster_->addPod(0, "client"));
    ASSERT_TRUE(cluster_->addPod(1, "server"));
    ASSERT_TRUE(cluster_->addPod(1, "plain", {.labels = {{"istio.io/dataplane-mode", "none"}}}));
    for (const char* pod : {"server", "plain"}) {
      auto echo = cluster_->runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                           .captureOutput = true});
      ASSERT_TRUE(echo);
      ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(10)));
      echoes_.push_back(std::move(*echo));
    }
  }

  // Starts `sluice-tcpcheck hold` in the client pod and waits until it holds `count` connections.
  std::optional<ChildProcess> hold(const std::string& to, int count) {
    auto child = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "hold", "--to", to,
                                                        "--count", std::to_string(count)},
                                               .captureOutput = true,
                                               .feedStdin = true});
    EXPECT_TRUE(child);
    if (!child) return std::nullopt;
    auto line = readLine(child->stdoutPipe(), std::chrono::seconds(120));
    EXPECT_TRUE(line && *line == "held " + std::to_string(count)) << (line ? *line : line.error().message());
    if (!line || *line != "held " + std::to_string(count)) return std::nullopt;
    return std::move(*child);
  }
  void TearDown() override { nodes_.clear(); }

  std::unique_ptr<Cluster> cluster_;
  std::vector<std::unique_ptr<NodeServices>> nodes_;
  std::vector<ChildProcess> echoes_;
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

TEST_F(ZtunnelE2eTest, OneGibibyteOneWayVerifiedByTheReceiver) {
  auto verifier = cluster_->runInPod("server", {.argv = {siblingProgram("sluice-tcpcheck"), "verify", "--listen",
                                                         "[::]:9200", "--seed", "99"},
                                                .captureOutput = true});
  ASSERT_TRUE(verifier);
  ASSERT_TRUE(readLine(verifier->stdoutPipe(), std::chrono::seconds(10)));
  auto out = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--one-way", "--to",
                                                    withPort(cluster_->pod("server")->ipv6, 9200), "--bytes",
                                                    std::to_string(1ull << 30), "--seed", "99"},
                                           .captureOutput = true});
  ASSERT_TRUE(out);
  auto line = readLine(out->stdoutPipe(), std::chrono::seconds(240));
  ASSERT_TRUE(line) << line.error().message();
  EXPECT_NE(line->find("\"verdict\":\"ok 1073741824\""), std::string::npos) << *line;
  auto code = out->wait(std::chrono::seconds(10));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << *line;
  // The receiver does check: another stream is refused.
  auto wrong = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--one-way", "--to",
                                                      withPort(cluster_->pod("server")->ipv6, 9200), "--bytes", "1000",
                                                      "--seed", "98"},
                                             .captureOutput = true});
  ASSERT_TRUE(wrong);
  auto wrongLine = readLine(wrong->stdoutPipe(), std::chrono::seconds(20));
  ASSERT_TRUE(wrongLine);
  EXPECT_NE(wrongLine->find("mismatch at"), std::string::npos) << *wrongLine;
}

// Memory follows load: a bulk transfer makes every receive buffer of the tunnels' workers
// resident (the kernel takes them in turn); a few seconds after the tunnels go idle the
// buffers' pages are given back, and both tunnels' anonymous memory falls back near where it
// started.
TEST_F(ZtunnelE2eTest, IdleTunnelsGiveTheirBufferPagesBack) {
  const pid_t tunnels[] = {nodes_[0]->tunnelPid(), nodes_[1]->tunnelPid()};
  uint64_t before[2], busy[2];
  for (int i = 0; i < 2; ++i) before[i] = anonymousRssKiB(tunnels[i]);
  auto r = sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv4, 8080), 256ull << 20,
                    std::chrono::seconds(120));
  ASSERT_EQ(r.exitCode, 0) << r.result.dump();
  for (int i = 0; i < 2; ++i) {
    busy[i] = anonymousRssKiB(tunnels[i]);
    // Else there is nothing to give back and the rest would prove nothing.
    ASSERT_GT(busy[i], before[i] + 8192) << "node" << i << ": the transfer left no buffers resident";
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  uint64_t now[2] = {busy[0], busy[1]};
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 2; ++i) now[i] = anonymousRssKiB(tunnels[i]);
    if (now[0] <= before[0] + 4096 && now[1] <= before[1] + 4096) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_LE(now[i], before[i] + 4096) << "node" << i << " anonymous RSS: " << before[i] << " KiB before, " << busy[i]
                                        << " KiB busy, " << now[i] << " KiB idle";
  }
  std::cout << "[ figures ] anonymous RSS (KiB) before / after 256 MiB echoed / idle: node0 " << before[0] << " / "
            << busy[0] << " / " << now[0] << ", node1 " << before[1] << " / " << busy[1] << " / " << now[1] << "\n";
}

TEST_F(ZtunnelE2eTest, OneGibibyteBothWaysAtOnce) {
  // The echo makes both directions carry 1 GiB at the same time.
  auto r = sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv4, 8080), 1ull << 30,
                    std::chrono::seconds(240));
  EXPECT_EQ(r.exitCode, 0) << r.result.dump();
  EXPECT_EQ(r.result.value("received", 0ull), 1ull << 30) << r.result.dump();
  if (r.exitCode != 0) {
    // It hung once in CI (exit -1 at 240 s, not reproduced since): the relays' states on both
    // nodes say where the bytes stopped.
    for (size_t i = 0; i < nodes_.size(); ++i) {
      auto dump = nodes_[i]->configDump();
      ADD_FAILURE() << "node" << i << " connections: " << (dump ? (*dump)["connections"].dump() : dump.error().message())
                    << "\npods: " << (dump ? (*dump)["pods"].dump() : "");
    }
  }
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

// Runs a Python script in `pod`; returns a handle whose stdout is captured.
std::optional<ChildProcess> python(const Cluster& cluster, const std::string& pod, const std::string& script) {
  auto child = cluster.runInPod(pod, {.argv = {"/usr/bin/python3", "-c", script}, .captureOutput = true});
  EXPECT_TRUE(child) << child.error().message();
  if (!child) return std::nullopt;
  return std::move(*child);
}

constexpr const char* kPythonListen = R"(
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', PORT)); s.listen(8); print('ready', flush=True)
c, _ = s.accept()
)";

std::string withPortIn(std::string script, int port) {
  return script.replace(script.find("PORT"), 4, std::to_string(port));
}

TEST_F(ZtunnelE2eTest, HalfCloseIsCarriedAndTheOtherWayKeepsFlowing) {
  // The client sends 5 bytes and half-closes; only then does the server answer with 4 MiB.
  auto server = python(*cluster_, "server", withPortIn(kPythonListen, 9100) + R"(
got = b''
while True:
    d = c.recv(65536)
    if not d: break
    got += d
c.sendall(b'x' * (4 << 20)); c.close()
print('server got', len(got), flush=True)
)");
  ASSERT_TRUE(server);
  ASSERT_TRUE(readLine(server->stdoutPipe(), std::chrono::seconds(10)));
  auto client = python(*cluster_, "client", "import socket\n"
                                            "s = socket.create_connection(('" + cluster_->pod("server")->ipv4 + "', 9100))\n"
                                            "s.sendall(b'hello'); s.shutdown(socket.SHUT_WR)\n"
                                            "n = 0\n"
                                            "while True:\n"
                                            "    d = s.recv(65536)\n"
                                            "    if not d: break\n"
                                            "    n += len(d)\n"
                                            "print('client got', n, flush=True)\n");
  ASSERT_TRUE(client);
  auto clientLine = readLine(client->stdoutPipe(), std::chrono::seconds(20));
  auto serverLine = readLine(server->stdoutPipe(), std::chrono::seconds(20));
  ASSERT_TRUE(clientLine && serverLine);
  EXPECT_EQ(*serverLine, "server got 5");
  EXPECT_EQ(*clientLine, "client got " + std::to_string(4 << 20));
}

TEST_F(ZtunnelE2eTest, ResetIsCarriedAcross) {
  auto server = python(*cluster_, "server", withPortIn(kPythonListen, 9101) + R"(
try:
    while c.recv(65536): pass
    print('eof', flush=True)
except ConnectionResetError:
    print('reset', flush=True)
)");
  ASSERT_TRUE(server);
  ASSERT_TRUE(readLine(server->stdoutPipe(), std::chrono::seconds(10)));
  auto client = python(*cluster_, "client", "import socket, struct, time\n"
                                            "s = socket.create_connection(('" + cluster_->pod("server")->ipv4 + "', 9101))\n"
                                            "s.sendall(b'abc'); time.sleep(0.3)\n"
                                            "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
                                            "s.close()\n");
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->wait(std::chrono::seconds(10)));
  auto line = readLine(server->stdoutPipe(), std::chrono::seconds(10));
  ASSERT_TRUE(line) << line.error().message();
  EXPECT_EQ(*line, "reset");
}

TEST_F(ZtunnelE2eTest, UnreachableDestinationIsAClearCountedError) {
  // An address in node1's pod range where no pod lives: nothing answers ARP.
  auto r = sendFrom(*cluster_, "client", "10.244.1.250:8080", 1000, std::chrono::seconds(30));
  EXPECT_EQ(r.exitCode, 2) << r.result.dump();
  auto dump = nodes_[0]->configDump();
  ASSERT_TRUE(dump);
  const json* client = podIn(*dump, "client");
  ASSERT_NE(client, nullptr);
  const json& failed = (*client)["counters"]["failed"];
  EXPECT_EQ(failed["unreachable"].get<int>() + failed["connect_timeout"].get<int>(), 1) << failed.dump();
}

TEST_F(ZtunnelE2eTest, MetricsUseIstioNames) {
  ASSERT_EQ(sendFrom(*cluster_, "client", withPort(cluster_->pod("server")->ipv4, 8080), 1000).exitCode, 0);
  auto metrics = nodes_[0]->httpGet("[::1]:15020", "/metrics");
  ASSERT_TRUE(metrics) << metrics.error().message();
  EXPECT_NE(metrics->find("istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"client\","
                          "source_workload_namespace=\"default\",source_principal=\"unknown\","),
            std::string::npos)
      << *metrics;
  // Both sides' labels on each side's series: node0 reports the client's connection to the
  // server, node1 the same connection arriving (plaintext here).
  auto sent = nodes_[0]->metricSum("istio_tcp_connections_opened_total",
                                   {{"reporter", "source"}, {"source_workload", "client"}, {"destination_service", "unknown"}});
  EXPECT_EQ(sent.value_or(-1), 1);
  EXPECT_TRUE(waitFor([&] {
    auto arrived = nodes_[1]->metricSum("istio_tcp_connections_closed_total",
                                        {{"reporter", "destination"}, {"destination_workload", "server"},
                                         {"connection_security_policy", "none"}, {"request_protocol", "tcp"}});
    return arrived.value_or(-1) == 1;
  }, std::chrono::seconds(10)));
  auto bytes = nodes_[1]->metricSum("istio_tcp_received_bytes_total", {{"reporter", "destination"}, {"destination_workload", "server"}});
  EXPECT_EQ(bytes.value_or(-1), 1000);
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

TEST_F(ZtunnelE2eTest, HundredThousandSmallMessagesEachEchoedExactly) {
  auto out = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "pingpong", "--to",
                                                    withPort(cluster_->pod("server")->ipv4, 8080), "--count", "100000",
                                                    "--size", "16"},
                                           .captureOutput = true});
  ASSERT_TRUE(out);
  auto line = readLine(out->stdoutPipe(), std::chrono::seconds(120));
  ASSERT_TRUE(line) << line.error().message();
  auto code = out->wait(std::chrono::seconds(10));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << *line;
  EXPECT_NE(line->find("\"messages\":100000"), std::string::npos) << *line;
}

TEST_F(ZtunnelE2eTest, ClientAbortMidTransferReleasesBothTunnels) {
  auto sender = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to",
                                                       withPort(cluster_->pod("server")->ipv4, 8080), "--bytes",
                                                       std::to_string(8ull << 30)}});
  ASSERT_TRUE(sender);
  ASSERT_TRUE(waitForActive(*nodes_[0], 1, std::chrono::seconds(10)));
  ::usleep(300000);  // mid-transfer
  ASSERT_TRUE(sender->signal(SIGKILL));
  ASSERT_TRUE(sender->wait(std::chrono::seconds(10)));
  EXPECT_TRUE(waitForActive(*nodes_[0], 0)) << "node0 still relays";
  EXPECT_TRUE(waitForActive(*nodes_[1], 0)) << "node1 still relays";
}

TEST_F(ZtunnelE2eTest, TenThousandConnectionsReturnDescriptorsAndMemory) {
  // Through one tunnel: client (enrolled) -> plain (opted out).
  std::string to = withPort(cluster_->pod("plain")->ipv4, 8080);
  pid_t tunnel = nodes_[0]->tunnelPid();
  // Each relayed connection holds two descriptors in the tunnel. Where the hard descriptor limit
  // is below 20,000 + the tunnel's own and it can't be raised (no CAP_SYS_RESOURCE, as in this
  // project's sandbox), the test uses as many connections as fit and says so.
  const int kConnections = std::min<int>(10000, static_cast<int>((openFileLimit(tunnel) - 100) / 2));
  if (kConnections < 10000) {
    std::cout << "[ note ] the tunnel may open " << openFileLimit(tunnel) << " descriptors: testing "
              << kConnections << " connections instead of 10000\n";
  }
  // Warm-up round: buffers and slot tables reach their working size.
  uint64_t rssFresh = rssKiB(tunnel), rssWarmPeak = 0;
  {
    auto held = hold(to, kConnections);
    ASSERT_TRUE(held);
    ASSERT_TRUE(waitForActive(*nodes_[0], kConnections, std::chrono::seconds(30)));
    rssWarmPeak = rssKiB(tunnel);
    held->stdinPipe().reset();
    ASSERT_TRUE(held->wait(std::chrono::seconds(60)));
  }
  ASSERT_TRUE(waitForActive(*nodes_[0], 0, std::chrono::seconds(60)));
  size_t fdsBefore = openFds(tunnel);
  uint64_t rssBefore = rssKiB(tunnel);
  auto held = hold(to, kConnections);
  ASSERT_TRUE(held);
  ASSERT_TRUE(waitForActive(*nodes_[0], kConnections, std::chrono::seconds(30)));
  size_t fdsPeak = openFds(tunnel);
  uint64_t rssPeak = rssKiB(tunnel);
  EXPECT_GE(fdsPeak, fdsBefore + 2 * kConnections);  // both sockets of every relayed connection
  held->stdinPipe().reset();
  ASSERT_TRUE(held->wait(std::chrono::seconds(60)));
  ASSERT_TRUE(waitForActive(*nodes_[0], 0, std::chrono::seconds(60)));
  EXPECT_EQ(openFds(tunnel), fdsBefore);
  uint64_t rssAfter = rssKiB(tunnel);
  EXPECT_LE(rssAfter, rssBefore + 4096) << "RSS before " << rssBefore << " KiB, after " << rssAfter << " KiB";
  std::cout << "[ figures ] " << kConnections << " idle relayed connections: tunnel RSS fresh " << rssFresh
            << " KiB, first peak " << rssWarmPeak << " KiB (" << (rssWarmPeak - rssFresh) * 1024 / kConnections
            << " B per connection), then " << rssBefore << " -> " << rssPeak << " -> " << rssAfter
            << " KiB; fds " << fdsBefore << " -> " << fdsPeak << " -> " << openFds(tunnel) << "\n";
}

class ZtunnelDrainTest : public ZtunnelE2eTest {
 protected:
  std::vector<std::string> tunnelArgs() const override { return {"--drain-timeout-ms", "2000"}; }
};

TEST_F(ZtunnelDrainTest, RemovedPodsConnectionsDrainThenReset) {
  std::string to = withPort(cluster_->pod("plain")->ipv4, 8080);
  auto held = hold(to, 1);
  ASSERT_TRUE(held);
  ASSERT_TRUE(waitForActive(*nodes_[0], 1));
  // The runtime's CNI DEL, while the app still runs (as the agent sees a pod being removed).
  auto conn = connectUnix(nodes_[0]->agentSocket(), SOCK_STREAM);
  ASSERT_TRUE(conn);
  const sim::Pod* client = cluster_->pod("client");
  json del{{"op", "cni"}, {"command", "DEL"}, {"containerId", client->containerId}};
  ASSERT_TRUE(writeAll(conn->get(), del.dump() + "\n"));
  std::string buffer;
  auto answer = readLineFrom(conn->get(), buffer, 4096, std::chrono::seconds(10));
  ASSERT_TRUE(answer);
  EXPECT_NE(answer->find("\"ok\":true"), std::string::npos) << *answer;
  // Draining: the pod is gone from the tunnel, its connection is still relayed...
  auto dump = nodes_[0]->configDump();
  ASSERT_TRUE(dump);
  EXPECT_EQ(podIn(*dump, "client"), nullptr);
  EXPECT_EQ((*dump)["connections"].size(), 1u);
  // ...new connections from the pod are no longer captured...
  size_t before = (*dump)["connections"].size();
  auto direct = cluster_->runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", to, "--bytes", "1000"}});
  ASSERT_TRUE(direct);
  ASSERT_TRUE(direct->wait(std::chrono::seconds(10)));
  EXPECT_EQ(activeConnections(*nodes_[0]), static_cast<int64_t>(before));
  // ...and after the drain timeout it is reset.
  EXPECT_TRUE(waitForActive(*nodes_[0], 0, std::chrono::seconds(10)));
}

}  // namespace
}  // namespace sluice::ztunnel
