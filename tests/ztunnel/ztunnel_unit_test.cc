#include <gtest/gtest.h>

#include "sluice/common/http_server.h"
#include "engine/op_token.h"
#include "proxy/config_snapshot.h"
#include "proxy/outbound_decision.h"

namespace sluice::ztunnel {
namespace {

struct DecisionCase {
  const char* description;
  const char* destination;
  ConfigSnapshot::OutboundPolicy policy;
  bool passthrough;
  const char* reasonFragment;
};

class DecideOutbound : public ::testing::TestWithParam<DecisionCase> {};

TEST_P(DecideOutbound, Table) {
  const auto& c = GetParam();
  auto dst = SocketAddress::parse(c.destination);
  ASSERT_TRUE(dst);
  ConfigSnapshot config;
  config.outboundPolicy = c.policy;
  auto decision = decideOutbound(*dst, config);
  EXPECT_EQ(decision.action == OutboundDecision::Action::kPassthrough, c.passthrough) << c.description;
  if (c.passthrough) {
    EXPECT_EQ(decision.target.toString(), dst->toString()) << c.description;
  } else {
    EXPECT_NE(decision.reason.find(c.reasonFragment), std::string::npos) << c.description << ": " << decision.reason;
  }
}

using P = ConfigSnapshot::OutboundPolicy;
INSTANTIATE_TEST_SUITE_P(
    Table, DecideOutbound,
    ::testing::Values(DecisionCase{"pod ipv4", "10.244.1.2:8080", P::kAllowAny, true, ""},
                      DecisionCase{"pod ipv6", "[fd00:10:244:1::2]:8080", P::kAllowAny, true, ""},
                      DecisionCase{"external", "93.184.216.34:443", P::kAllowAny, true, ""},
                      DecisionCase{"registry only", "93.184.216.34:443", P::kRegistryOnly, false, "REGISTRY_ONLY"},
                      DecisionCase{"loopback v4", "127.0.0.1:8080", P::kAllowAny, false, "loopback"},
                      DecisionCase{"loopback v6", "[::1]:8080", P::kAllowAny, false, "loopback"},
                      DecisionCase{"loop to outbound", "10.244.1.2:15001", P::kAllowAny, false, "tunnel's own ports"},
                      DecisionCase{"loop to inbound", "10.244.1.2:15006", P::kAllowAny, false, "tunnel's own ports"},
                      DecisionCase{"hbone port", "10.244.1.2:15008", P::kAllowAny, false, "tunnel's own ports"},
                      DecisionCase{"admin port", "10.244.1.2:15000", P::kAllowAny, false, "tunnel's own ports"},
                      DecisionCase{"port zero", "10.244.1.2:0", P::kAllowAny, false, "port 0"}));

struct HeadCase {
  const char* head;
  std::expected<std::string, int> expected;
};

class ParseRequestHead : public ::testing::TestWithParam<HeadCase> {};

TEST_P(ParseRequestHead, Table) { EXPECT_EQ(parseRequestHead(GetParam().head), GetParam().expected) << GetParam().head; }

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRequestHead,
    ::testing::Values(HeadCase{"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "/metrics"},
                      HeadCase{"GET /config_dump?include_eds HTTP/1.0\r\n\r\n", "/config_dump"},
                      HeadCase{"HEAD /healthz/ready HTTP/1.1\r\n\r\n", "/healthz/ready"},
                      HeadCase{"POST /quitquitquit HTTP/1.1\r\n\r\n", std::unexpected(405)},
                      HeadCase{"GET metrics HTTP/1.1\r\n\r\n", std::unexpected(400)},
                      HeadCase{"GET /metrics HTTP/2\r\n\r\n", std::unexpected(400)},
                      HeadCase{"GET /metrics\r\n\r\n", std::unexpected(400)},
                      HeadCase{"garbage", std::unexpected(400)},
                      HeadCase{"", std::unexpected(400)}));

TEST(SnapshotStore, PublishesWholeVersionedSnapshots) {
  SnapshotStore store;
  auto first = store.current();
  EXPECT_EQ(first->version, 0u);
  ConfigSnapshot next;
  next.outboundPolicy = ConfigSnapshot::OutboundPolicy::kRegistryOnly;
  store.publish(next);
  auto second = store.current();
  EXPECT_EQ(second->version, 1u);
  EXPECT_EQ(second->outboundPolicy, ConfigSnapshot::OutboundPolicy::kRegistryOnly);
  // A reader holding the old snapshot keeps it unchanged.
  EXPECT_EQ(first->version, 0u);
  EXPECT_EQ(first->outboundPolicy, ConfigSnapshot::OutboundPolicy::kAllowAny);
}

TEST(OpToken, RoundTripsAndWrapsTheGeneration) {
  OpToken t{0xab, 0x123456, 0xdeadbeef};
  OpToken back = OpToken::decode(t.encode());
  EXPECT_EQ(back.op, 0xab);
  EXPECT_EQ(back.generation, 0x123456u);
  EXPECT_EQ(back.slot, 0xdeadbeefu);
  OpToken wrapped = OpToken::decode(OpToken{1, 0x1000001, 7}.encode());
  EXPECT_EQ(wrapped.generation, 1u);  // 24 bits kept
}

}  // namespace
}  // namespace sluice::ztunnel
