// Pure HBONE decisions (proxy/hbone_request.h), as tables.
#include <gtest/gtest.h>

#include "proxy/hbone_request.h"

namespace sluice::ztunnel {
namespace {

struct ForwardedCase {
  const char* client;
  const char* header;
};
class ForwardedFor : public ::testing::TestWithParam<ForwardedCase> {};
TEST_P(ForwardedFor, Table) {
  EXPECT_EQ(forwardedFor(*SocketAddress::parse(GetParam().client)), GetParam().header);
}
INSTANTIATE_TEST_SUITE_P(Table, ForwardedFor,
                         ::testing::Values(ForwardedCase{"10.0.0.1:4321", "for=10.0.0.1"},
                                           ForwardedCase{"[fd00::1]:4321", "for=\"[fd00::1]\""},
                                           ForwardedCase{"[::ffff:10.0.0.9]:1", "for=10.0.0.9"}));

TEST(Traceparent, IsAValidSampledW3cHeader) {
  EXPECT_EQ(traceparent(0x1, 0x2, 0x10), "00-00000000000000010000000000000002-0000000000000011-01");
  // A zero span id or trace id is invalid: never produced.
  EXPECT_EQ(traceparent(0, 0, 0), "00-00000000000000000000000000000001-0000000000000001-01");
  EXPECT_EQ(traceparent(~0ull, ~0ull, ~0ull), "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01");
  EXPECT_EQ(traceparent(0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x00000000000000a0ULL),
            "00-0123456789abcdeffedcba9876543210-00000000000000a1-01");
}

struct VerdictCase {
  const char* description;
  PeerCheck check;
  const char* fragment;  // "" when acceptable
};
class PeerIdentity : public ::testing::TestWithParam<VerdictCase> {};
TEST_P(PeerIdentity, Table) {
  std::string verdict = peerIdentityVerdict(GetParam().check);
  std::string fragment = GetParam().fragment;
  if (fragment.empty()) {
    EXPECT_EQ(verdict, "") << GetParam().description;
  } else {
    EXPECT_NE(verdict.find(fragment), std::string::npos) << GetParam().description << ": " << verdict;
  }
}
constexpr auto kServer = PeerRole::kClientOfServer;  // we dialled a server
constexpr auto kClient = PeerRole::kServerOfClient;  // a client dialled us
INSTANTIATE_TEST_SUITE_P(
    Table, PeerIdentity,
    ::testing::Values(
        VerdictCase{"server proves the destination", {kServer, "spiffe://td/ns/b/sa/db", "spiffe://td/ns/b/sa/db", "td"}, ""},
        VerdictCase{"server proves another workload", {kServer, "spiffe://td/ns/b/sa/web", "spiffe://td/ns/b/sa/db", "td"},
                    "but spiffe://td/ns/b/sa/db was expected"},
        VerdictCase{"server proves nothing", {kServer, "", "spiffe://td/ns/b/sa/db", "td"}, "no single SPIFFE identity"},
        VerdictCase{"client of our trust domain", {kClient, "spiffe://td/ns/a/sa/x", "", "td"}, ""},
        VerdictCase{"client of another domain", {kClient, "spiffe://other/ns/a/sa/x", "", "td"}, "not of trust domain td"},
        VerdictCase{"domain prefix is not enough", {kClient, "spiffe://td.evil/ns/a/sa/x", "", "td"}, "not of trust domain"},
        VerdictCase{"client proves nothing", {kClient, "", "", "td"}, "no single SPIFFE identity"},
        VerdictCase{"a node credential is no client", {kClient, "spiffe://td/sluice/node/node0", "", "td"}, "is not a workload identity"},
        VerdictCase{"extra path segments", {kClient, "spiffe://td/ns/a/sa/x/y", "", "td"}, "is not a workload identity"},
        VerdictCase{"empty service account", {kClient, "spiffe://td/ns/a/sa/", "", "td"}, "is not a workload identity"},
        VerdictCase{"no service account", {kClient, "spiffe://td/ns/a", "", "td"}, "is not a workload identity"},
        VerdictCase{"uppercase namespace", {kClient, "spiffe://td/ns/A/sa/x", "", "td"}, "is not a workload identity"},
        VerdictCase{"dotted service account", {kClient, "spiffe://td/ns/a/sa/x.y", "", "td"}, ""}));

TEST(RevokedIssuer, RefusesCertificatesIssuedToARevokedNodeUntilItsRevocation) {
  using std::chrono::seconds;
  std::chrono::system_clock::time_point at{seconds(1'796'000'000)};
  const std::map<std::string, int64_t> revoked{{"node1", 1'796'000'000}};
  struct Case {
    const char* name;
    const char* issuedTo;
    std::chrono::system_clock::time_point issuedAt;
    bool refused;
  } cases[] = {
      {"issued to the revoked node before", "node1", at - seconds(3600), true},
      {"issued to it in the revocation's second", "node1", at, true},
      {"issued to it after (re-admitted)", "node1", at + seconds(1), false},
      {"issued to another node", "node2", at - seconds(3600), false},
      {"names no node (another CA's)", "", at - seconds(3600), false},
  };
  for (const auto& c : cases) {
    std::string why = revokedIssuerVerdict(revoked, c.issuedTo, c.issuedAt);
    EXPECT_EQ(!why.empty(), c.refused) << c.name << ": " << why;
    if (c.refused) {
      EXPECT_NE(why.find("issued to node node1, revoked at 1796000000"), std::string::npos) << why;
    }
  }
  EXPECT_EQ(revokedIssuerVerdict({}, "node1", at), "");
}

TEST(Unmapped, TurnsV4MappedAddressesIntoIpv4AndLeavesOthers) {
  EXPECT_EQ(unmapped(*SocketAddress::parse("[::ffff:10.1.2.3]:80")).toString(), "10.1.2.3:80");
  EXPECT_EQ(unmapped(*SocketAddress::parse("[fd00::1]:80")).toString(), "[fd00::1]:80");
  EXPECT_EQ(unmapped(*SocketAddress::parse("10.1.2.3:80")).toString(), "10.1.2.3:80");
}

}  // namespace
}  // namespace sluice::ztunnel
