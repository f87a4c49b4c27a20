// A DestinationRule's connectionPool settings for each upstream connection's life, end to end
// through node0's tunnel (web-v1 and web-v2 on node1, behind HBONE): a TCP connection idle past
// tcp.idleTimeout is closed, a busy one past tcp.maxConnectionDuration too; an HTTP upstream
// connection without requests past http.idleTimeout is closed (the next request comes over a
// new one, as the app sees); and http.maxConcurrentStreams spreads the streams of one app
// connection over as many upstream HTTP/2 connections as it takes (the app counts them).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/l7_fixture.h"
#include "support/privileged.h"

namespace sluice {
namespace {

using nlohmann::json;
constexpr const char* kVip = sim::kCanaryVip;

const std::string kToV2 = everyRequestTo("{host: web, subset: v2}");

class UpstreamConnectionE2eTest : public L7MeshTest {
 protected:
  void SetUp() override { SLUICE_REQUIRE_PRIVILEGES(); }
  bool poolApplied() {
    auto dump = nodes_[0]->configDump();
    return dump && dump->contains("services") && (*dump)["services"][std::string(kVip) + ":80"].contains("connectionPool");
  }
  json lifetime(std::vector<std::string> args) { return clientJson("tests/interop/connection_lifetime.py", std::move(args)); }
  // How many connections the app in web-v2 has seen so far (one h2c request through the mesh).
  int peersSeen() {
    RunOutput out = inClient({"curl", "-sS", "--http2-prior-knowledge", "http://" + std::string(kVip) + "/"});
    json body = json::parse(out.out, nullptr, false);
    return body.is_object() ? body.value("peers_seen", -1) : -1;
  }
};

TEST_F(UpstreamConnectionE2eTest, TcpConnectionsCloseWhenIdleOrTooOld) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "tcp", kToV2, [&] { return poolApplied(); },
                                      "{connectionPool: {tcp: {idleTimeout: 2s, maxConnectionDuration: 5s, "
                                      "tcpKeepalive: {time: 30s, interval: 5s, probes: 3}}}}"));
  // Idle: closed once 2 s pass without a byte (checked at the tunnel's 1 s tick).
  json idle = lifetime({"idle", kVip, "80"});
  double idleFor = idle.value("closed_after", 0.0);
  EXPECT_GE(idleFor, 2.0) << idle.dump();
  EXPECT_LE(idleFor, 4.5) << idle.dump();
  // Busy (a request every 0.3 s, never idle for 2 s): closed at its 5 s maximum.
  json busy = lifetime({"busy", kVip, "80"});
  double busyFor = busy.value("closed_after", 0.0);
  EXPECT_GE(busyFor, 5.0) << busy.dump();
  EXPECT_LE(busyFor, 7.5) << busy.dump();
  EXPECT_GE(busy.value("answered", 0), 10) << "the connection carried requests until its end";
}

TEST_F(UpstreamConnectionE2eTest, AnHttpUpstreamConnectionWithoutRequestsIsClosedAtItsIdleTimeout) {
  // The same header, the same endpoint address (consistent hash): the upstream connection is
  // the only thing that can change between requests.
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kToV2, [&] { return poolApplied(); },
                                      "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}, "
                                      "connectionPool: {http: {idleTimeout: 1s}}}"));
  json result = lifetime({"pause", kVip, "80", "3"});
  ASSERT_EQ(result["peers"].size(), 3u) << result.dump();
  EXPECT_EQ(result["peers"][0], result["peers"][1]) << "back to back, the upstream connection is kept";
  EXPECT_NE(result["peers"][1], result["peers"][2]) << "after 3 s without requests it was closed: " << result.dump();
  EXPECT_TRUE(waitForActive(*nodes_[0], 0));
}

TEST_F(UpstreamConnectionE2eTest, MaxConcurrentStreamsSpreadsStreamsOverUpstreamConnections) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http2", kToV2, [&] { return poolApplied(); },
                                      "{connectionPool: {http: {maxConcurrentStreams: 2}}}"));
  int before = peersSeen();
  ASSERT_GT(before, 0);
  // One app connection with 10 streams in flight (each answered after 200 ms): at most 2 per
  // upstream connection, so at least 5 of them; without the limit they would share one per
  // endpoint address.
  RunOutput load = inClient({"h2load", "-n", "60", "-c", "1", "-m", "10", "http://" + std::string(kVip) + "/slow?ms=200"});
  EXPECT_NE(load.out.find("status codes: 60 2xx"), std::string::npos) << load.out << load.err;
  int after = peersSeen();
  EXPECT_GE(after - before, 5) << "upstream connections opened for 10 streams at once";
}

}  // namespace
}  // namespace sluice
