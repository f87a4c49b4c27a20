// The capture programs in a real kernel: two simulated nodes, real pods, real connections.
// Each node's CaptureDatapath plays the node agent's part; a StandinTunnel plays the tunnel's.
#include "capture/capture_datapath.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "simcluster/cluster.h"
#include "sluice/common/netns.h"
#include "support/link_local.h"
#include "support/privileged.h"
#include "support/standin_tunnel.h"

namespace sluice::agent {
namespace {

namespace fs = std::filesystem;
using sim::Cluster;
using testing::StandinTunnel;

constexpr uint32_t kMark = SLUICE_TUNNEL_MARK_DEFAULT;

std::string withPort(const std::string& ip, int port) {
  return ip.find(':') == std::string::npos ? ip + ":" + std::to_string(port)
                                           : "[" + ip + "]:" + std::to_string(port);
}

// Runs `sluice-tcpcheck send` in `pod`; true when every byte came back.
bool sendFrom(const Cluster& cluster, const std::string& pod, const std::string& to,
              std::vector<std::string> extra = {}) {
  SpawnOptions options{.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", to, "--bytes", "100000"},
                       .captureOutput = true};
  options.argv.insert(options.argv.end(), extra.begin(), extra.end());
  auto child = cluster.runInPod(pod, options);
  if (!child) return false;
  auto line = readLine(child->stdoutPipe(), std::chrono::seconds(20));
  auto code = child->wait(std::chrono::seconds(10));
  return line && code && *code == 0;
}

class CaptureDatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto cluster = Cluster::create({.nodes = 2});
    ASSERT_TRUE(cluster) << cluster.error().message();
    cluster_ = std::move(*cluster);
    for (const char* name : {"client", "bystander"}) ASSERT_TRUE(cluster_->addPod(0, name));
    ASSERT_TRUE(cluster_->addPod(1, "server"));
    for (int node = 0; node < 2; ++node) {
      auto dp = CaptureDatapath::open({.pinDir = cluster_->node(node).bpffsDir,
                                       .cgroupPath = cluster_->node(node).cgroupPath,
                                       .tunnelMark = kMark});
      ASSERT_TRUE(dp) << dp.error().message();
      datapath_[node] = std::move(*dp);
    }
    // Two app ports on the server, so one can be excluded.
    for (int port : {9000, 9001}) {
      auto echo = cluster_->runInPod("server", {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen",
                                                         "[::]:" + std::to_string(port)},
                                                .captureOutput = true});
      ASSERT_TRUE(echo);
      ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(10)));
      echoes_.push_back(std::move(*echo));
    }
  }

  // Enrolls `pod` on its node's datapath with a stand-in tunnel, redirection on.
  std::unique_ptr<StandinTunnel> enroll(const std::string& pod, std::map<std::string, std::string> annotations = {}) {
    const sim::Pod* p = cluster_->pod(pod);
    auto cookie = netnsCookie(p->netnsFd.get());
    EXPECT_TRUE(cookie);
    auto plan = planPodCapture({.addresses = {p->ipv4, p->ipv6}, .annotations = std::move(annotations)});
    EXPECT_TRUE(plan) << plan.error().message();
    auto& dp = *datapath_[p->node];
    EXPECT_TRUE(dp.installPod(*cookie, p->netnsFd.get(), *plan));
    auto tunnel = StandinTunnel::start(p->netnsFd.get(), *cookie, cluster_->node(p->node).bpffsDir, kMark);
    EXPECT_TRUE(tunnel) << tunnel.error().message();
    if (!tunnel) return nullptr;
    EXPECT_TRUE(dp.setInboundListener(*cookie, AF_INET, (*tunnel)->inboundListenerFd()));
    EXPECT_TRUE(dp.setInboundListener(*cookie, AF_INET6, (*tunnel)->inboundListenerFd()));
    EXPECT_TRUE(dp.setRedirect(*cookie, true));
    cookies_[pod] = *cookie;
    return std::move(*tunnel);
  }

  uint64_t counter(const std::string& pod, int which) {
    auto c = datapath_[cluster_->pod(pod)->node]->counters(cookies_[pod]);
    return c ? c->value[which] : ~0ull;
  }

  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<CaptureDatapath> datapath_[2];
  std::map<std::string, uint64_t> cookies_;
  std::vector<ChildProcess> echoes_;
};

TEST_F(CaptureDatapathTest, OutboundLandsOnThePodsOwnListenerWithTheOriginalDestination) {
  auto tunnel = enroll("client");
  ASSERT_TRUE(tunnel);
  const sim::Pod* server = cluster_->pod("server");
  std::vector<std::string> targets = {withPort(server->ipv4, 9000), withPort(server->ipv6, 9000),
                                      "[::ffff:" + server->ipv4 + "]:9000"};
  for (const auto& to : targets) EXPECT_TRUE(sendFrom(*cluster_, "client", to)) << to;
  auto accepted = tunnel->waitForAccepted(3);
  ASSERT_EQ(accepted.size(), 3u);
  std::vector<std::string> expected = {withPort(server->ipv4, 9000), withPort(server->ipv6, 9000),
                                       withPort(server->ipv4, 9000)};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(accepted[i].listenerPort, 15001);
    ASSERT_TRUE(accepted[i].origDst) << targets[i] << ": " << accepted[i].origDstError;
    EXPECT_EQ(accepted[i].origDst->toString(), expected[i]) << targets[i];
  }
  EXPECT_EQ(counter("client", SLUICE_CTR_REDIRECTED), 3u);
}

TEST_F(CaptureDatapathTest, TheAppSeesTheOriginalPeerNotTheTunnel) {
  auto tunnel = enroll("client");
  ASSERT_TRUE(tunnel);
  const sim::Pod* server = cluster_->pod("server");
  const sim::Pod* client = cluster_->pod("client");
  struct Case {
    const char* family;
    std::string to, peer, local;  // where the app connects; what getpeername and getsockname should say
  };
  const Case cases[] = {{"AF_INET", server->ipv4, server->ipv4, client->ipv4},
                        {"AF_INET6", server->ipv6, server->ipv6, client->ipv6},
                        {"AF_INET6", "::ffff:" + server->ipv4, "::ffff:" + server->ipv4, "::ffff:" + client->ipv4}};
  for (const auto& c : cases) {
    // The app's view of a captured connection: the server as its peer and its own pod address
    // as its local end (the rewrite bound it to loopback), with the socket's real port. Then a
    // connection to a loopback listener of its own, which is not captured: left as it is.
    std::string script = "import socket\n"
                         "s=socket.socket(socket." + std::string(c.family) + "); s.connect(('" + c.to + "', 9000))\n"
                         "l=s.getsockname()\n"
                         "print('%s %d %s %d' % (s.getpeername()[:2] + l[:2]))\n"
                         "v=socket.socket(); v.bind(('127.0.0.1', 0)); v.listen(1)\n"
                         "d=socket.socket(); d.connect(v.getsockname())\n"
                         "print(d.getsockname()[0])\n";
    auto child = cluster_->runInPod("client", {.argv = {"/usr/bin/python3", "-c", script}, .captureOutput = true});
    ASSERT_TRUE(child);
    auto line = readLine(child->stdoutPipe(), std::chrono::seconds(10));
    ASSERT_TRUE(line) << c.to << ": " << line.error().message();
    std::istringstream fields(*line);
    std::string peer, local;
    int peerPort = 0, localPort = 0;
    fields >> peer >> peerPort >> local >> localPort;
    EXPECT_EQ(peer, c.peer) << *line;
    EXPECT_EQ(peerPort, 9000) << *line;
    EXPECT_EQ(local, c.local) << *line;
    EXPECT_GT(localPort, 0) << *line;
    auto loopback = readLine(child->stdoutPipe(), std::chrono::seconds(10));
    ASSERT_TRUE(loopback) << loopback.error().message();
    EXPECT_EQ(*loopback, "127.0.0.1") << "an uncaptured socket keeps its own address";
  }
  EXPECT_EQ(tunnel->waitForAccepted(3).size(), 3u) << "the connections were captured";
}

TEST_F(CaptureDatapathTest, UnenrolledOptedOutExcludedAndMarkedTrafficIsUntouched) {
  auto tunnel = enroll("client", {{kExcludeOutboundPorts, "9001"}});
  ASSERT_TRUE(tunnel);
  const sim::Pod* server = cluster_->pod("server");
  // Not enrolled.
  EXPECT_TRUE(sendFrom(*cluster_, "bystander", withPort(server->ipv4, 9000)));
  // Excluded port, and a socket carrying the tunnel's mark.
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 9001)));
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv6, 9000), {"--mark", std::to_string(kMark)}));
  EXPECT_TRUE(tunnel->accepted().empty());
  EXPECT_EQ(counter("client", SLUICE_CTR_EXCLUDED_PORT), 1u);
  EXPECT_EQ(counter("client", SLUICE_CTR_BYPASS_MARK), 1u);
  EXPECT_EQ(counter("client", SLUICE_CTR_REDIRECTED), 0u);
}

TEST_F(CaptureDatapathTest, ExcludedCidrIsUntouched) {
  const sim::Pod* server = cluster_->pod("server");
  auto tunnel = enroll("client", {{kExcludeOutboundRanges, "10.244.1.0/24"}});
  ASSERT_TRUE(tunnel);
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 9000)));  // excluded
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv6, 9000)));  // captured
  auto accepted = tunnel->waitForAccepted(1);
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(accepted[0].origDst->toString(), withPort(server->ipv6, 9000));
  EXPECT_EQ(counter("client", SLUICE_CTR_EXCLUDED_CIDR), 1u);
}

TEST_F(CaptureDatapathTest, InboundFromOutsideLandsOnTheTunnelNotHboneNorTheTunnelsOwn) {
  auto tunnel = enroll("server");
  ASSERT_TRUE(tunnel);
  const sim::Pod* server = cluster_->pod("server");
  EXPECT_TRUE(sendFrom(*cluster_, "bystander", withPort(server->ipv4, 9000)));
  EXPECT_TRUE(sendFrom(*cluster_, "bystander", withPort(server->ipv6, 9000)));
  EXPECT_TRUE(sendFrom(*cluster_, "bystander", withPort(server->ipv4, 15008)));  // HBONE: its own listener
  auto accepted = tunnel->waitForAccepted(3);
  ASSERT_EQ(accepted.size(), 3u);
  int on15006 = 0, on15008 = 0;
  for (const auto& a : accepted) {
    if (a.listenerPort == 15006) {
      ++on15006;
      // The accepted socket still shows the original destination as its local address.
      EXPECT_EQ(a.local.port(), 9000);
    }
    if (a.listenerPort == 15008) ++on15008;
  }
  EXPECT_EQ(on15006, 2);
  EXPECT_EQ(on15008, 1);
  // The tunnel's own connection to the app (from inside the pod) reaches the app.
  auto marked = cluster_->runInPod("server", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to",
                                                       withPort(server->ipv4, 9000), "--mark", std::to_string(kMark)}});
  ASSERT_TRUE(marked);
  auto code = marked->wait(std::chrono::seconds(20));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(tunnel->accepted().size(), 3u);
  EXPECT_EQ(counter("server", SLUICE_CTR_INBOUND_CAPTURED), 2u);
  EXPECT_EQ(counter("server", SLUICE_CTR_INBOUND_HBONE), 1u);
  EXPECT_EQ(counter("server", SLUICE_CTR_INBOUND_LOCAL_SOURCE), 1u);
}

// Issue 11: an address nobody reported to the agent (the pod's IPv6 link-local one) is the
// pod's too: plaintext from the node to it lands on the tunnel, never on the app.
TEST_F(CaptureDatapathTest, InboundToTheLinkLocalAddressLandsOnTheTunnel) {
  auto tunnel = enroll("server");
  ASSERT_TRUE(tunnel);
  std::string linkLocal = testing::linkLocalAddress(*cluster_, "server");
  ASSERT_FALSE(linkLocal.empty()) << "the pod has no link-local address";
  // From the node's namespace, over the pod bridge: a plain TCP client that sends a line.
  auto client = cluster_->runOnNode(
      cluster_->pod("server")->node,
      {.argv = {"/usr/bin/python3", "-c",
                "import socket,sys; s=socket.create_connection((sys.argv[1], 9000), timeout=5); s.sendall(b'plain')",
                linkLocal + "%cni0"},
       .captureOutput = true});
  ASSERT_TRUE(client);
  auto failure = readLine(client->stderrPipe(), std::chrono::seconds(10));
  auto code = client->wait(std::chrono::seconds(10));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << "the connection was not accepted at all: " << (failure ? *failure : "");
  auto accepted = tunnel->waitForAccepted(1);
  ASSERT_EQ(accepted.size(), 1u) << "plaintext to " << linkLocal << " went around the tunnel";
  EXPECT_EQ(accepted[0].listenerPort, 15006);
  EXPECT_EQ(accepted[0].local.port(), 9000);
  EXPECT_EQ(accepted[0].local.ip(), linkLocal);
  EXPECT_EQ(counter("server", SLUICE_CTR_INBOUND_CAPTURED), 1u);
}

TEST_F(CaptureDatapathTest, InboundWithoutTunnelListenerFailsClosed) {
  {
    auto tunnel = enroll("server");
    ASSERT_TRUE(tunnel);
  }  // the stand-in is gone: its listener left the socket map when it closed
  const sim::Pod* server = cluster_->pod("server");
  auto child = cluster_->runInPod("bystander", {.argv = {"timeout", "2", siblingProgram("sluice-tcpcheck"), "send",
                                                         "--to", withPort(server->ipv4, 9000)}});
  ASSERT_TRUE(child);
  auto code = child->wait(std::chrono::seconds(10));
  ASSERT_TRUE(code);
  EXPECT_NE(*code, 0) << "plaintext reached the app around the tunnel";
  EXPECT_GE(counter("server", SLUICE_CTR_INBOUND_NO_LISTENER), 1u);
}

TEST_F(CaptureDatapathTest, RemovalRestoresDirectTrafficAndLeavesNothing) {
  const sim::Pod* server = cluster_->pod("server");
  auto tunnel = enroll("client");
  ASSERT_TRUE(tunnel);
  ASSERT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 9000)));
  ASSERT_EQ(tunnel->waitForAccepted(1).size(), 1u);
  uint64_t cookie = cookies_["client"];
  ASSERT_TRUE(datapath_[0]->removePod(cookie));
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 9000)));
  EXPECT_EQ(tunnel->accepted().size(), 1u);
  auto config = datapath_[0]->podConfig(cookie);
  ASSERT_TRUE(config);
  EXPECT_FALSE(*config);
  EXPECT_TRUE(datapath_[0]->installedPods().empty());
  for (const auto& fill : datapath_[0]->mapFill()) {
    if (fill.name == "sluice_settings") continue;  // a fixed array
    EXPECT_EQ(fill.entries, 0u) << fill.name;
  }
  EXPECT_FALSE(fs::exists(cluster_->node(0).bpffsDir + "/v1/links/sk_lookup/" + std::to_string(cookie)));
  // Detached, not only unpinned: the pod's netns runs no sk_lookup program any more.
  __u32 attached = 99;
  ASSERT_EQ(bpf_prog_query(cluster_->pod("client")->netnsFd.get(), BPF_SK_LOOKUP, 0, nullptr, nullptr, &attached), 0);
  EXPECT_EQ(attached, 0u);
}

TEST_F(CaptureDatapathTest, ARestartedDatapathAdoptsPinsWithoutAGap) {
  const sim::Pod* server = cluster_->pod("server");
  auto tunnel = enroll("client");
  ASSERT_TRUE(tunnel);
  datapath_[0].reset();  // the agent is gone; pins keep capture working
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv4, 9000)));
  ASSERT_EQ(tunnel->waitForAccepted(1).size(), 1u);
  auto again = CaptureDatapath::open({.pinDir = cluster_->node(0).bpffsDir,
                                      .cgroupPath = cluster_->node(0).cgroupPath, .tunnelMark = kMark});
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE((*again)->adopted());
  EXPECT_EQ((*again)->installedPods(), std::vector<uint64_t>{cookies_["client"]});
  datapath_[0] = std::move(*again);
  EXPECT_TRUE(sendFrom(*cluster_, "client", withPort(server->ipv6, 9000)));
  EXPECT_EQ(tunnel->waitForAccepted(2).size(), 2u);
  // Counters survived the restart: two redirects in all, not one.
  EXPECT_EQ(counter("client", SLUICE_CTR_REDIRECTED), 2u);
  // Only one program per hook is attached, not two.
  auto attached = runChecked({.argv = {"bpftool", "cgroup", "show", cluster_->node(0).cgroupPath}});
  ASSERT_TRUE(attached);
  size_t count = 0;
  for (size_t pos = 0; (pos = attached->out.find("sluice_connect4", pos)) != std::string::npos; ++pos) ++count;
  EXPECT_EQ(count, 1u) << attached->out;
}

}  // namespace
}  // namespace sluice::agent
