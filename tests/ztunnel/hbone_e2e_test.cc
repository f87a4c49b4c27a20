// HBONE end to end: two simulated nodes, the real controller with its CA (node credentials,
// 20 s workload certificates so they rotate during the tests), the real agents and ztunnels.
// Mesh traffic between pods must cross the network as TLS 1.3 on 15008 only; independent
// clients (python3-h2 with Python's ssl, openssl s_client) probe the HBONE server directly;
// AuthorizationPolicy and PeerAuthentication are changed live through the controller.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "simcluster/canary_config.h"
#include "simcluster/cluster.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "support/link_local.h"
#include "support/mesh_fixture.h"
#include "support/privileged.h"
#include "support/tunnel_stats.h"

namespace sluice::ztunnel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sim::withPort;

constexpr const char* kWeb = "spiffe://cluster.local/ns/shop/sa/web";
constexpr const char* kDb = "spiffe://cluster.local/ns/shop/sa/db";
constexpr const char* kProbe = "spiffe://cluster.local/ns/tools/sa/probe";

class HboneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto mesh = startMesh({.certificateValiditySeconds = 20});
    ASSERT_TRUE(mesh) << mesh.error().message();
    cluster_ = std::move(mesh->cluster);
    controller_ = std::move(mesh->controller);
    nodes_ = std::move(mesh->nodes);
    ASSERT_TRUE(cluster_->addPod(0, "client", {.ns = "shop", .serviceAccount = "web", .labels = {{"app", "web"}}}));
    ASSERT_TRUE(cluster_->addPod(1, "server", {.ns = "shop", .serviceAccount = "db", .labels = {{"app", "db"}}}));
    auto echo = startEcho(*cluster_, "server");
    ASSERT_TRUE(echo) << echo.error().message();
    echo_ = std::move(*echo);
    serverIp_ = cluster_->pod("server")->ipv4;
    ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "workloads.yaml", sim::workloadsYaml(*cluster_)));
    ASSERT_TRUE(sim::waitForPodCertificates(*cluster_, nodes_, {"client", "server"}))
        << "the pods' certificates never arrived: " << nodes_[0]->configDump().value_or(json{})["certificates"].dump();
    ASSERT_TRUE(waitFor([&] { return echoFromClient("warm-up") == "warm-up"; }, std::chrono::seconds(15)));
  }
  void TearDown() override {
    nodes_.clear();
    (void)controller_.stop();
  }

  // The serial of `identity`'s certificate on node `node`, "" when it has none.
  std::string serial(int node, const std::string& identity) {
    auto dump = nodes_[static_cast<size_t>(node)]->configDump();
    if (!dump) return "";
    for (const auto& c : (*dump)["certificates"]) {
      if (c["identity"] == identity) return c["serial"].get<std::string>();
    }
    return "";
  }

  // A capture counter of `pod` ("namespace/name") as the node's agent reports it.
  uint64_t podCounter(int node, const std::string& pod, const std::string& reason) {
    auto out = nodes_[static_cast<size_t>(node)]->sluicectl({"-o", "json", "pod", pod});
    if (!out || out->exitCode != 0) return 0;
    json record = json::parse(out->out, nullptr, false);
    return record.is_discarded() ? 0 : record["counters"].value(reason, uint64_t{0});
  }

  uint64_t counter(int node, const std::string& pod, const std::string& path) {
    auto dump = nodes_[static_cast<size_t>(node)]->configDump();
    if (!dump) return 0;
    for (const auto& p : (*dump)["pods"]) {
      if (p["name"] == pod) return p["counters"][json::json_pointer(path)].get<uint64_t>();
    }
    return 0;
  }

  // Runs to completion inside a pod (pod != "") or on node0's network; returns stdout.
  RunOutput runIn(const std::string& pod, std::vector<std::string> argv, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    SpawnOptions options{.argv = std::move(argv), .captureOutput = true};
    UniqueFd procs;
    if (!pod.empty()) {
      options.netnsFd = cluster_->pod(pod)->netnsFd.get();
      options.cgroupProcsFd = cluster_->pod(pod)->cgroupProcsFd.get();
    } else {
      options.netnsFd = cluster_->node(0).netnsFd.get();
    }
    auto out = run(options, {}, timeout);
    EXPECT_TRUE(out) << (out ? "" : out.error().message());
    return out.value_or(RunOutput{});
  }

  // Sends `payload` from the client pod to `to`:8080 (tests/interop/echo_client.py) and returns
  // the echo; with `halfClose` the client shuts its write side first and reads to EOF.
  std::string echoFromClient(const std::string& payload, const std::string& to = "", bool halfClose = true,
                             std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"/usr/bin/python3", sourceFile("tests/interop/echo_client.py"),
                                     to.empty() ? serverIp_ : to, "8080", payload};
    if (halfClose) argv.push_back("--half-close");
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto out = runIn("client", argv, std::chrono::seconds(60));
    lastErr_ = out.err;
    std::string text = out.out;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }

  // A key and certificate for `spiffeId` from `caDir` (the mesh's CA, or another one).
  std::string issue(const std::string& spiffeId, const std::string& caDir) {
    std::string out = cluster_->node(0).stateDir + "/probe-" + std::to_string(++issued_);
    auto made = controller_.issueCertificate(spiffeId, out, caDir);
    EXPECT_TRUE(made) << (made ? "" : made.error().message());
    return out;
  }

  json pythonHbone(const std::string& credential, const std::string& authority, const std::string& payload,
                   const std::string& ca = "") {
    std::vector<std::string> argv = {"/usr/bin/python3", sourceFile("tests/interop/hbone_client.py"), "--connect",
                                     withPort(serverIp_, 15008), "--authority", authority, "--payload", payload,
                                     "--ca", ca.empty() ? controller_.caDir() + "/root-cert.pem" : ca};
    if (!credential.empty()) argv.insert(argv.end(), {"--cert", credential + "/cert.pem", "--key", credential + "/key.pem"});
    auto out = runIn("", argv);
    json result = json::parse(out.out, nullptr, false);
    if (result.is_discarded()) return json{{"error", "not JSON: " + out.out + out.err}};
    if (!result.contains("status") || !result["status"].is_number()) result["status"] = 0;  // no response
    return result;
  }

  std::unique_ptr<sim::Cluster> cluster_;
  sim::MeshController controller_;
  std::vector<std::unique_ptr<sim::MeshNode>> nodes_;
  ChildProcess echo_;
  std::string serverIp_;
  int issued_ = 0;
  std::string lastErr_;  // stderr of the last echoFromClient
};

TEST_F(HboneTest, PodToPodTrafficCrossesTheNetworkOnlyAsTls) {
  std::string pcap = cluster_->node(1).stateDir + "/underlay.pcap";
  auto dump = cluster_->runOnNode(1, {.argv = {"tcpdump", "-i", "any", "-n", "-U", "--immediate-mode", "-w", pcap}, .captureOutput = true});
  ASSERT_TRUE(dump);
  ASSERT_TRUE(readLine(dump->stderrPipe(), std::chrono::seconds(10)));  // "listening on any ..."
  const std::string payload = "SLUICE-KNOWN-PLAINTEXT-PAYLOAD-0123456789";
  EXPECT_EQ(echoFromClient(payload), payload);
  ::usleep(500000);
  ASSERT_TRUE(dump->signal(SIGINT));
  ASSERT_TRUE(dump->wait(std::chrono::seconds(10)));
  char summary[4096] = {};
  ssize_t got = ::read(dump->stderrPipe().get(), summary, sizeof(summary) - 1);
  std::string tcpdumpSays(summary, got > 0 ? static_cast<size_t>(got) : 0);
  std::ifstream in(pcap, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  ASSERT_GT(bytes.str().size(), 100u) << "the capture is empty: " << tcpdumpSays;
  EXPECT_EQ(bytes.str().find(payload), std::string::npos) << "plaintext payload seen on the node's network";
  auto hbone = runChecked({.argv = {"tcpdump", "-r", pcap, "-n", "tcp port 15008"}});
  auto plain = runChecked({.argv = {"tcpdump", "-r", pcap, "-n", "tcp port 8080"}});
  ASSERT_TRUE(hbone && plain);
  EXPECT_FALSE(hbone->out.empty()) << "no HBONE packets captured";
  EXPECT_TRUE(plain->out.empty()) << "the app port was reached over the network:\n" << plain->out;
  // Each tunnel saw the other's identity.
  EXPECT_GE(counter(1, "server", "/inbound/opened"), 1u);
  EXPECT_GE(counter(0, "client", "/outbound/opened"), 1u);
  auto metrics = nodes_[1]->httpGet("127.0.0.1:15020", "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->find(std::string("destination_principal=\"") + kDb + "\""), std::string::npos);
  EXPECT_NE(metrics->find("sluice_certificate_expiry_seconds{identity=\"" + std::string(kDb) + "\"}"), std::string::npos);
}

// 20 connections opened at once to a destination with no pooled connection yet (the server's
// IPv6 address: a pool key of its own) share one handshake and one HBONE connection.
TEST_F(HboneTest, ConcurrentFirstConnectionsShareOneHboneConnection) {
  std::string v6 = cluster_->pod("server")->ipv6;
  std::string intact = echoFromClient("burst", v6, /*halfClose=*/false, {"--parallel", "20"});
  auto dump = nodes_[0]->configDump();
  EXPECT_EQ(intact, "20") << lastErr_ << "\nnode0: " << (dump ? (*dump)["pods"].dump() : "")
                              << "\nnode1: " << nodes_[1]->configDump().value_or(json{})["pods"].dump();
  ASSERT_TRUE(dump);
  int toV6 = 0;
  for (const auto& h : (*dump)["hboneConnections"]) toV6 += h["peer"] == withPort(v6, 15008) ? 1 : 0;
  EXPECT_EQ(toV6, 1) << (*dump)["hboneConnections"].dump();
}

TEST_F(HboneTest, IndependentClientsSeeAStrictHboneServer) {
  std::string probe = issue(kProbe, controller_.caDir());
  json ok = pythonHbone(probe, withPort(serverIp_, 8080), "hello over h2");
  EXPECT_EQ(ok.value("status", 0), 200) << ok.dump();
  EXPECT_EQ(ok.value("received", ""), "hello over h2");
  EXPECT_EQ(ok.value("peer", ""), kDb);  // the server presented the pod's own identity
  // Never an open relay: only this pod's addresses, never the tunnel's own ports.
  std::string clientIp = cluster_->pod("client")->ipv4;
  EXPECT_EQ(pythonHbone(probe, withPort(clientIp, 8080), "x").value("status", 0), 400);
  EXPECT_EQ(pythonHbone(probe, withPort(serverIp_, 15008), "x").value("status", 0), 400);
  EXPECT_EQ(pythonHbone(probe, "not-an-address", "x").value("status", 0), 400);
  // Nothing listens on 9: the app is unreachable.
  EXPECT_EQ(pythonHbone(probe, withPort(serverIp_, 9), "x").value("status", 0), 503);
  // A node's credential (the mesh's own CA, the trust domain, but no workload): refused as a
  // client, whatever the authorization policy would say.
  std::string nodeCredential = cluster_->node(0).stateDir + "/node-credential-probe";
  ASSERT_TRUE(controller_.issueNodeCredential("node0", nodeCredential));
  std::filesystem::create_symlink(nodeCredential + "/node-cert.pem", nodeCredential + "/cert.pem");
  std::filesystem::create_symlink(nodeCredential + "/node-key.pem", nodeCredential + "/key.pem");
  json asNode = pythonHbone(nodeCredential, withPort(serverIp_, 8080), "as a node");
  EXPECT_EQ(asNode.value("status", -1), 0) << "no answer at all (the connection is dropped after its handshake): " << asNode.dump();
  EXPECT_NE(asNode.value("received", ""), "as a node") << asNode.dump();
  // A certificate from another CA: the server refuses the handshake.
  std::string stranger = issue(kProbe, cluster_->node(0).stateDir + "/other-ca");
  json refused = pythonHbone(stranger, withPort(serverIp_, 8080), "x");
  EXPECT_TRUE(refused.contains("error")) << refused.dump();
  // No client certificate at all: openssl s_client fails the handshake.
  // (stdin stays open a second so s_client reads the server's alert after its Finished)
  auto sclient = runIn("", {"/bin/sh", "-c",
                            fmt::format("sleep 1 | openssl s_client -connect {} -tls1_3 -alpn h2 -CAfile {}",
                                        withPort(serverIp_, 15008), controller_.caDir() + "/root-cert.pem")});
  std::string all = sclient.out + sclient.err;
  EXPECT_NE(all.find("certificate required"), std::string::npos) << all;
  EXPECT_GE(counter(1, "server", "/failed/handshake"), 3u) << "the stranger, the node and s_client";
  EXPECT_GE(counter(1, "server", "/failed/malformed"), 3u);
}

// A second independent client: curl (>= 8.1: HTTP/2 to an HTTPS proxy) tunnels HTTP/1.1 to an
// HTTP server in the pod through HBONE with a client certificate. curl can't check a SPIFFE
// URI SAN (it verifies host names), so it skips verifying the server (--proxy-insecure); the
// server still verifies curl's certificate, as the run without one shows.
TEST_F(HboneTest, CurlTunnelsThroughHboneWithAClientCertificate) {
  auto http = cluster_->runInPod("server", {.argv = {"/usr/bin/python3", "-u", "-m", "http.server", "8081"}, .captureOutput = true});
  ASSERT_TRUE(http);
  ASSERT_TRUE(readLine(http->stdoutPipe(), std::chrono::seconds(10)));  // "Serving HTTP on ..."
  std::string probe = issue(kProbe, controller_.caDir());
  std::vector<std::string> curl = {"curl", "-sS", "--max-time", "10", "--proxy", "https://" + withPort(serverIp_, 15008),
                                   "--proxy-http2", "--proxy-insecure", "--proxytunnel",
                                   "http://" + withPort(serverIp_, 8081) + "/"};
  std::vector<std::string> withCert = curl;
  withCert.insert(withCert.end() - 1, {"--proxy-cert", probe + "/cert.pem", "--proxy-key", probe + "/key.pem"});
  auto ok = runIn("", withCert);
  EXPECT_EQ(ok.exitCode, 0) << ok.err;
  EXPECT_NE(ok.out.find("Directory listing"), std::string::npos) << ok.out << ok.err;
  auto refused = runIn("", curl);
  EXPECT_NE(refused.exitCode, 0) << "no client certificate, yet: " << refused.out;
}

// Sluice's HBONE client against an independent HTTP/2 CONNECT server: nghttpx (TLS 1.3, client
// certificates verified against the mesh's root) in an opted-out pod that the controller lists
// as workload shop/edge, so node0's tunnel dials it over HBONE and expects that identity.
// nghttpx hands each CONNECT to a tiny HTTP/1.1 CONNECT proxy (its backend), which reaches the
// echo server in the same pod. nghttpx 1.52 resets a CONNECT stream whose client half-closes
// (END_STREAM) before the reply, so this app reads its echo before it closes.
TEST_F(HboneTest, SluiceClientWorksAgainstNghttpx) {
  auto edge = cluster_->addPod(1, "edge", {.ns = "shop", .serviceAccount = "edge",
                                          .labels = {{"istio.io/dataplane-mode", "none"}}});
  ASSERT_TRUE(edge);
  std::string edgeIp = (*edge)->ipv4;
  std::string cert = issue("spiffe://cluster.local/ns/shop/sa/edge", controller_.caDir());
  auto echo = cluster_->runInPod("edge", {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                          .captureOutput = true});
  auto proxy = cluster_->runInPod("edge", {.argv = {"/usr/bin/python3", sourceFile("tests/interop/connect_proxy.py"), "3128"},
                                           .captureOutput = true});
  ASSERT_TRUE(echo && proxy);
  ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(10)));
  ASSERT_TRUE(readLine(proxy->stdoutPipe(), std::chrono::seconds(10)));
  auto nghttpx = cluster_->runInPod(
      "edge", {.argv = {"nghttpx", "--conf=/dev/null", "--http2-proxy", "--frontend=*,15008", "--backend=127.0.0.1,3128", "--verify-client",
                        "--verify-client-cacert=" + cert + "/root-cert.pem", "--workers=1", "--no-ocsp",
                        "--tls-min-proto-version=TLSv1.3", "--errorlog-file=/tmp/nghttpx-test.log",
                        cert + "/key.pem", cert + "/cert.pem"},
               .captureOutput = true});
  ASSERT_TRUE(nghttpx);
  auto resources = [&] { return nodes_[0]->configDump().value_or(json{{"resources", 0}})["resources"].get<int>(); };
  int before = resources();
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "workloads.yaml", sim::workloadsYaml(*cluster_)));
  ASSERT_TRUE(waitFor([&] { return resources() > before; }, std::chrono::seconds(15))) << "node0 never learned of shop/edge";
  std::string got;
  EXPECT_TRUE(waitFor([&] { return (got = echoFromClient("through nghttpx", edgeIp, /*halfClose=*/false)) == "through nghttpx"; },
                      std::chrono::seconds(15)))
      << "got '" << got << "'; nghttpx: " << [&] {
           (void)nghttpx->stop();
           char buffer[8192] = {};
           ssize_t n = ::read(nghttpx->stderrPipe().get(), buffer, sizeof(buffer) - 1);
           return std::string(buffer, n > 0 ? static_cast<size_t>(n) : 0);
         }();
  auto dump = nodes_[0]->configDump();
  ASSERT_TRUE(dump);
  bool pooled = false;
  for (const auto& h : (*dump)["hboneConnections"]) {
    pooled = pooled || (h["peer"] == withPort(edgeIp, 15008) && h["peerIdentity"] == "spiffe://cluster.local/ns/shop/sa/edge");
  }
  EXPECT_TRUE(pooled) << (*dump)["hboneConnections"].dump() << (*dump)["pods"].dump();
}

TEST_F(HboneTest, AuthorizationPolicyDeniesAPrincipalWith401) {
  std::string probe = issue(kProbe, controller_.caDir());
  ASSERT_EQ(pythonHbone(probe, withPort(serverIp_, 8080), "before").value("status", 0), 200);
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "authz.yaml",
                                   "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                   "metadata: {name: no-probe, namespace: shop}\n"
                                   "spec: {action: DENY, rules: [{from: [{source: {principals: [cluster.local/ns/tools/sa/probe]}}]}]}\n"));
  json denied;
  ASSERT_TRUE(waitFor([&] {
    denied = pythonHbone(probe, withPort(serverIp_, 8080), "must not arrive");
    return denied.value("status", 0) == 401;
  }, std::chrono::seconds(15))) << denied.dump();
  uint64_t openedBefore = counter(1, "server", "/inbound/opened");
  EXPECT_EQ(pythonHbone(probe, withPort(serverIp_, 8080), "must not arrive").value("status", 0), 401);
  EXPECT_EQ(counter(1, "server", "/inbound/opened"), openedBefore) << "a denied request reached the app";
  EXPECT_GE(counter(1, "server", "/failed/denied"), 2u);
  // The mesh's own client (another principal) still gets through.
  EXPECT_EQ(echoFromClient("still allowed"), "still allowed");
}

// Early data meets a refusal: the client's tunnel sends the app's bytes right behind the
// CONNECT, the server's tunnel denies the principal with 401 before any delivery, so none of
// them reaches the app (no inbound connection opened), the app's connection is reset, and the
// tunnel keeps serving once the policy is gone.
TEST_F(HboneTest, AMeshClientsEarlyBytesNeverReachAnAppThatDeniesIt) {
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "authz.yaml",
                                   "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                   "metadata: {name: no-web, namespace: shop}\n"
                                   "spec: {action: DENY, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]}\n"));
  ASSERT_TRUE(waitFor([&] { return echoFromClient("probe", "", /*halfClose=*/false).empty(); }, std::chrono::seconds(15)))
      << "the policy never applied";
  uint64_t opened = counter(1, "server", "/inbound/opened");
  uint64_t denied = counter(1, "server", "/failed/denied");
  uint64_t refused = counter(0, "client", "/failed/hbone_refused");
  EXPECT_EQ(echoFromClient("must not arrive", "", /*halfClose=*/false), "") << lastErr_;
  EXPECT_EQ(counter(1, "server", "/inbound/opened"), opened) << "a denied client's bytes reached the app";
  EXPECT_GT(counter(1, "server", "/failed/denied"), denied);
  EXPECT_GT(counter(0, "client", "/failed/hbone_refused"), refused);
  ASSERT_TRUE(std::filesystem::remove(controller_.configDir() + "/authz.yaml"));
  EXPECT_TRUE(waitFor([&] { return echoFromClient("allowed again") == "allowed again"; }, std::chrono::seconds(15)));
}

TEST_F(HboneTest, StrictRefusesPlaintextAndPermissiveRelaysIt) {
  // From node0's own network (outside the mesh) straight to the server pod: plaintext.
  auto send = [&] {
    return runIn("", {siblingProgram("sluice-tcpcheck"), "send", "--to", withPort(serverIp_, 8080), "--bytes", "10000"}).exitCode;
  };
  EXPECT_EQ(send(), 0) << "PERMISSIVE (the default) must relay plaintext";
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "peerauth.yaml",
                                   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                                   "metadata: {name: strict, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n"));
  ASSERT_TRUE(waitFor([&] { return send() != 0; }, std::chrono::seconds(15))) << "STRICT never took effect";
  EXPECT_GE(counter(1, "server", "/failed/plaintext_refused"), 1u);
  EXPECT_EQ(echoFromClient("mesh traffic is mTLS"), "mesh traffic is mTLS");
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "peerauth.yaml",
                                   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                                   "metadata: {name: strict, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}\n"));
  EXPECT_TRUE(waitFor([&] { return send() == 0; }, std::chrono::seconds(15)));
}

// A pod the runtime removes is closed before its network goes: after the mesh's CNI DEL (the
// runtime's first step), with the app still running and its interface still up, plaintext that
// PERMISSIVE relayed a moment ago gets no byte from the app (captured, and no tunnel listener
// to steer to: dropped), until the namespace is gone and the agent removes the rest.
TEST_F(HboneTest, ARemovedPodStaysClosedToPlaintextUntilItsNamespaceIsGone) {
  auto send = [&] {
    return runIn("", {siblingProgram("sluice-tcpcheck"), "send", "--to", withPort(serverIp_, 8080), "--bytes", "1000"}).exitCode;
  };
  ASSERT_EQ(send(), 0) << "PERMISSIVE (the default) must relay plaintext";
  auto podRecord = nodes_[1]->sluicectl({"-o", "json", "pod", "shop/server"});
  ASSERT_TRUE(podRecord && podRecord->exitCode == 0);
  uint64_t cookie = json::parse(podRecord->out).value("netnsCookie", uint64_t{0});
  ASSERT_NE(cookie, 0u);
  std::string linkPin = cluster_->node(1).bpffsDir + "/v1/links/sk_lookup/" + std::to_string(cookie);
  auto dropped = [&] { return podCounter(1, "shop/server", "inbound_no_listener"); };
  uint64_t droppedBefore = dropped();
  ASSERT_TRUE(cluster_->delistFromMesh("server"));
  EXPECT_NE(send(), 0) << "the removed pod's app answered plaintext";
  EXPECT_GT(dropped(), droppedBefore) << "the SYN was not dropped by the pod's capture";
  auto closing = nodes_[1]->sluicectl({"-o", "json", "pod", "shop/server"});
  ASSERT_TRUE(closing && closing->exitCode == 0);
  EXPECT_TRUE(json::parse(closing->out).value("closing", false)) << closing->out;
  EXPECT_TRUE(std::filesystem::exists(linkPin));
  // The tunnel lets the pod go: its idle HBONE connection closes at once, not at its idle
  // timeout (a socket left in the namespace keeps the namespace, and its capture, alive).
  EXPECT_TRUE(waitFor([&] { return nodes_[1]->configDump().value_or(json::object())["hboneConnections"].empty(); },
                      std::chrono::seconds(5)));
  // The namespace goes (the runtime's last step): the agent removes the pod's capture.
  echo_ = ChildProcess();
  ASSERT_TRUE(cluster_->removePod("server"));
  EXPECT_TRUE(waitFor([&] { return !std::filesystem::exists(linkPin); }, std::chrono::seconds(20)))
      << "the closed pod's capture outlived its namespace";
  EXPECT_TRUE(waitFor([&] { return nodes_[1]->agentStatus().value_or(json::object()).value("pods", 1) == 0; },
                      std::chrono::seconds(5)));
}

// Issue 11: every address of a STRICT pod, not only those CNI reported. From the server's own
// node (the pod bridge: link-local reaches it), with the app listening on [::]: under PERMISSIVE
// plaintext to IPv4 and the global IPv6 is echoed (the probe sees bytes), plaintext to the
// link-local address is captured and refused (not an address the configuration knows for the
// pod: fail closed; before, it reached the app around the tunnel); under STRICT nothing.
TEST_F(HboneTest, StrictHoldsOnEveryAddressOfThePodIncludingLinkLocal) {
  std::string linkLocalIp = testing::linkLocalAddress(*cluster_, "server");
  ASSERT_FALSE(linkLocalIp.empty()) << "the server pod has no link-local address";
  std::string linkLocal = linkLocalIp + "%cni0";
  const sim::Pod* server = cluster_->pod("server");
  // A pod outside the mesh on the same bridge.
  ASSERT_TRUE(cluster_->addPod(server->node, "outsider", {.ns = "other", .serviceAccount = "default",
                                                          .labels = {{"istio.io/dataplane-mode", "none"}}}));
  // Bytes echoed back to a plaintext client (0: refused or closed), on the server's node or in
  // `fromPod`.
  auto echoed = [&](const std::string& address, const std::string& fromPod = "") {
    SpawnOptions options{.argv = {"/usr/bin/python3", "-c",
                                  "import socket,sys\n"
                                  "try:\n"
                                  "  s=socket.create_connection((sys.argv[1],8080),timeout=3); s.sendall(b'x'*100)\n"
                                  "  s.shutdown(socket.SHUT_WR); n=0\n"
                                  "  while True:\n"
                                  "    d=s.recv(4096)\n"
                                  "    if not d: break\n"
                                  "    n+=len(d)\n"
                                  "  print(n)\n"
                                  "except OSError: print(0)\n",
                                  address},
                         .captureOutput = true};
    options.netnsFd = fromPod.empty() ? cluster_->node(server->node).netnsFd.get() : cluster_->pod(fromPod)->netnsFd.get();
    auto out = run(options, {}, std::chrono::seconds(20));
    return out ? std::atoi(out->out.c_str()) : -1;
  };
  const std::string addresses[] = {server->ipv4, server->ipv6, linkLocal};
  EXPECT_EQ(echoed(server->ipv4), 100) << "under PERMISSIVE";
  EXPECT_EQ(echoed(server->ipv6), 100) << "under PERMISSIVE";
  EXPECT_EQ(echoed(linkLocal), 0) << "plaintext to the link-local address went around the tunnel";
  EXPECT_EQ(echoed(server->ipv4, "outsider"), 100) << "the non-mesh pod reaches the server under PERMISSIVE";
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "peerauth.yaml",
                                   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                                   "metadata: {name: strict, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n"));
  ASSERT_TRUE(waitFor([&] { return echoed(server->ipv4) == 0; }, std::chrono::seconds(15))) << "STRICT never took effect";
  for (const auto& address : addresses) EXPECT_EQ(echoed(address), 0) << address << ": plaintext reached the app under STRICT";
  for (const auto& address : {server->ipv4, server->ipv6, linkLocalIp + "%eth0"}) {
    EXPECT_EQ(echoed(address, "outsider"), 0) << address << ": plaintext from a non-mesh pod reached the app under STRICT";
  }
  EXPECT_EQ(echoFromClient("mesh traffic is mTLS"), "mesh traffic is mTLS");
}

// Issue 11: policy does not depend on the controller's workload list alone. A pod the
// configuration does not list is selected by the labels the node agent sent with AddWorkload: a
// STRICT PeerAuthentication selecting it refuses plaintext from its first connection.
TEST_F(HboneTest, APodTheControllerDoesNotListIsSelectedByItsLabels) {
  ASSERT_TRUE(cluster_->addPod(1, "newcomer", {.ns = "shop", .serviceAccount = "db", .labels = {{"app", "newcomer"}}}));
  auto echo = startEcho(*cluster_, "newcomer");
  ASSERT_TRUE(echo) << echo.error().message();
  const std::string target = withPort(cluster_->pod("newcomer")->ipv4, 8080);
  auto send = [&] {
    return runIn("", {siblingProgram("sluice-tcpcheck"), "send", "--to", target, "--bytes", "10000"}).exitCode;
  };
  ASSERT_TRUE(waitFor([&] { return send() == 0; }, std::chrono::seconds(15))) << "PERMISSIVE must relay plaintext";
  ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "peerauth.yaml",
                                   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                                   "metadata: {name: strict-newcomer, namespace: shop}\n"
                                   "spec: {selector: {matchLabels: {app: newcomer}}, mtls: {mode: STRICT}}\n"));
  ASSERT_TRUE(waitFor([&] { return send() != 0; }, std::chrono::seconds(15)))
      << "a STRICT policy selecting the pod by label never applied: the controller does not list it";
  EXPECT_GE(counter(1, "newcomer", "/failed/plaintext_refused"), 1u);
  // The listed server pod is not selected: plaintext still reaches it.
  EXPECT_EQ(runIn("", {siblingProgram("sluice-tcpcheck"), "send", "--to", withPort(serverIp_, 8080), "--bytes", "100"}).exitCode, 0);
}

TEST_F(HboneTest, TheAppSeesItsClientsOwnAddress) {
  // An app in the server pod that tells each client what getpeername() says of it.
  auto app = cluster_->runInPod("server", {.argv = {"/usr/bin/python3", sourceFile("tests/interop/peer_address.py"), "serve", "8081"},
                                           .captureOutput = true});
  ASSERT_TRUE(app);
  ASSERT_TRUE(readLine(app->stdoutPipe(), std::chrono::seconds(10)));
  // Asks from `from` (a pod, or "" for node0's network); the server pod's tunnel must have
  // relayed the connection (else the app would see the client without the mesh in between).
  auto ask = [&](const std::string& from, const std::string& to) {
    uint64_t relayed = counter(1, "server", "/inbound/opened");
    auto out = runIn(from, {"/usr/bin/python3", sourceFile("tests/interop/peer_address.py"), "ask", to, "8081"});
    EXPECT_EQ(counter(1, "server", "/inbound/opened"), relayed + 1) << "not relayed by the server's tunnel: " << to;
    json answer = json::parse(out.out, nullptr, false);
    return answer.is_discarded() ? json::object() : answer;
  };
  const sim::Pod* client = cluster_->pod("client");
  const sim::Pod* server = cluster_->pod("server");
  // A mesh client (over HBONE between nodes), IPv4 and IPv6: the client pod's own address of
  // that family. (The client's socket itself is connected to its tunnel's 15001 on loopback.)
  EXPECT_EQ(ask("client", server->ipv4).value("seen", ""), client->ipv4);
  EXPECT_EQ(ask("client", server->ipv6).value("seen", ""), client->ipv6);
  // A plaintext client the default PERMISSIVE lets in (node0's network, outside the mesh).
  for (const std::string& to : {server->ipv4, server->ipv6}) {
    json plaintext = ask("", to);
    EXPECT_FALSE(plaintext.value("self", "").empty()) << plaintext.dump();
    EXPECT_EQ(plaintext.value("seen", ""), plaintext.value("self", "-")) << "to " << to << ": " << plaintext.dump();
  }
}

TEST_F(HboneTest, CertificatesRotateUnderLiveTraffic) {
  // One connection kept busy across the rotation (20 s certificates rotate at about 10 s).
  std::string before = serial(0, kWeb);
  auto chat = cluster_->runInPod("client", {.argv = {"/usr/bin/python3", sourceFile("tests/interop/echo_client.py"), serverIp_,
                                                     "8080", "tick", "--rounds", "30", "--interval", "0.5"},
                                            .captureOutput = true});
  ASSERT_TRUE(chat);
  EXPECT_TRUE(waitFor([&] { return serial(0, kWeb) != before && !serial(0, kWeb).empty(); }, std::chrono::seconds(25)))
      << "the certificate never rotated";
  auto line = readLine(chat->stdoutPipe(), std::chrono::seconds(40));
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "30") << "the connection broke across the rotation";
  EXPECT_EQ(echoFromClient("after rotation"), "after rotation");
}

}  // namespace
}  // namespace sluice::ztunnel
