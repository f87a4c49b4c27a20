// Each upstream connection's life under a DestinationRule's connectionPool
// (proxy/upstream_policy.h): the fields a snapshot compiles (set, unset and "0s" told apart),
// the duration check, and TCP keepalive as the kernel reports it back on a real socket.
#include "proxy/upstream_policy.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "proxy/snapshot_builder.h"
#include "sluice/common/unique_fd.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;

TEST(UpstreamPolicy, SnapshotCompilesEachFieldAndTellsUnsetFromZero) {
  auto snapshot = buildSnapshot(testing::resourcesFromYaml(
      testing::webServiceYaml() +
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
      "spec: {host: web, trafficPolicy: {connectionPool: {tcp: {idleTimeout: 0s, maxConnectionDuration: 90s, "
      "tcpKeepalive: {probes: 4, time: 60s, interval: 10s}}, http: {idleTimeout: 15s, maxConcurrentStreams: 7}}}, "
      "subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {http: {maxRetries: 1}}}}]}\n"));
  ASSERT_TRUE(snapshot) << snapshot.error().message();
  const ServiceEntry& web = *snapshot->servicesByVip.at("10.96.0.10:80");
  const UpstreamConnectionPolicy& c = web.pool.policy.connections;
  EXPECT_EQ(c.tcpIdleTimeout, 0ms) << "0s: no idle timeout";
  EXPECT_EQ(c.relayIdleTimeout(1h), 0ms);
  EXPECT_EQ(c.maxConnectionDuration, 90s);
  EXPECT_EQ(c.keepalive, (TcpKeepalive{4, 60s, 10s}));
  EXPECT_EQ(c.upstreamIdleTimeout(), 15s);
  EXPECT_EQ(c.maxConcurrentStreams, 7u);
  // A subset's own connectionPool replaces the rule's (Istio): its unset fields are defaults.
  const UpstreamConnectionPolicy& v1 = web.poolFor("v1").policy.connections;
  EXPECT_FALSE(v1.tcpIdleTimeout);
  EXPECT_EQ(v1.relayIdleTimeout(1h), 1h) << "unset: the tunnel's";
  EXPECT_EQ(v1.upstreamIdleTimeout(), UpstreamConnectionPolicy::kDefaultHttpIdle);
  EXPECT_FALSE(v1.keepalive);
  EXPECT_EQ(v1.maxConcurrentStreams, 0u);
}

TEST(UpstreamPolicy, AConnectionOutlivesItsMaximumDuration) {
  auto start = std::chrono::steady_clock::time_point{} + 100s;
  const struct {
    std::chrono::milliseconds max, age;
    bool outlived;
  } cases[] = {{0ms, 10h, false}, {5s, 4999ms, false}, {5s, 5s, true}, {5s, 6s, true}, {1ms, 1ms, true}};
  for (const auto& c : cases) EXPECT_EQ(outlived(start, c.max, start + c.age), c.outlived) << c.max.count() << "/" << c.age.count();
}

TEST(UpstreamPolicy, KeepaliveIsWhatTheKernelReportsBack) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(applyKeepalive(fd.get(), {3, 45s, 7s}));
  auto get = [&](int level, int option) {
    int value = -1;
    socklen_t length = sizeof(value);
    EXPECT_EQ(::getsockopt(fd.get(), level, option, &value, &length), 0);
    return value;
  };
  EXPECT_EQ(get(SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPCNT), 3);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPIDLE), 45);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPINTVL), 7);
  // Unset fields keep the kernel's values.
  UniqueFd other(::socket(AF_INET6, SOCK_STREAM, 0));
  ASSERT_TRUE(other);
  int kernelIdle = -1;
  socklen_t length = sizeof(kernelIdle);
  ASSERT_EQ(::getsockopt(other.get(), IPPROTO_TCP, TCP_KEEPIDLE, &kernelIdle, &length), 0);
  ASSERT_TRUE(applyKeepalive(other.get(), {}));
  int after = -1;
  ASSERT_EQ(::getsockopt(other.get(), IPPROTO_TCP, TCP_KEEPIDLE, &after, &length), 0);
  EXPECT_EQ(after, kernelIdle);
  EXPECT_FALSE(applyKeepalive(-1, {}).has_value()) << "a bad descriptor is an error, not ignored";
}

}  // namespace
}  // namespace sluice::ztunnel
