#include "sluice/common/socket_address.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

namespace sluice {
namespace {

struct ParseCase {
  const char* input;
  bool ok;
  const char* printed;  // toString() when ok; a fragment of the error otherwise
};

class SocketAddressParse : public ::testing::TestWithParam<ParseCase> {};

TEST_P(SocketAddressParse, ParsesOrExplains) {
  const auto& c = GetParam();
  auto parsed = SocketAddress::parse(c.input);
  ASSERT_EQ(parsed.has_value(), c.ok) << c.input;
  if (c.ok) {
    EXPECT_EQ(parsed->toString(), c.printed);
  } else {
    EXPECT_NE(parsed.error().message().find(c.printed), std::string::npos)
        << parsed.error().message();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, SocketAddressParse,
    ::testing::Values(ParseCase{"10.0.0.1:80", true, "10.0.0.1:80"},
                      ParseCase{"[fd00::1]:15008", true, "[fd00::1]:15008"},
                      ParseCase{"[::]:0", true, "[::]:0"},
                      ParseCase{"[::ffff:10.0.0.1]:1", true, "[::ffff:10.0.0.1]:1"},
                      ParseCase{"10.0.0.1:65535", true, "10.0.0.1:65535"},
                      ParseCase{"10.0.0.1:65536", false, "port must be"},
                      ParseCase{"10.0.0.1:", false, "port must be"},
                      ParseCase{"10.0.0.1:8x", false, "port must be"},
                      ParseCase{"10.0.0.1", false, "missing :port"},
                      ParseCase{"fd00::1:80", false, "[address]:port"},
                      ParseCase{"[10.0.0.1]:80", false, "only for IPv6"},
                      ParseCase{"[fd00::1]80", false, "expected [IPv6]:port"},
                      ParseCase{"300.0.0.1:80", false, "not an IPv4 or IPv6"},
                      ParseCase{"host:80", false, "not an IPv4 or IPv6"}));

TEST(SocketAddress, RoundTripsThroughSockaddr) {
  auto a = SocketAddress::parse("[fd00:10:244::2]:8080");
  ASSERT_TRUE(a);
  auto b = SocketAddress::fromSockaddr(a->sockaddrPtr(), a->length());
  EXPECT_EQ(b.toString(), "[fd00:10:244::2]:8080");
  EXPECT_EQ(b.family(), AF_INET6);
  EXPECT_EQ(b.port(), 8080);
}

// IPv4 text is written by hand (not inet_ntop, which goes through sprintf): it must say exactly
// what inet_ntop says, for every octet width and for addresses all over the space.
TEST(SocketAddress, Ipv4TextIsWhatInetNtopWrites) {
  for (const char* text : {"0.0.0.0", "255.255.255.255", "10.244.1.3", "1.22.233.4", "100.10.1.0", "9.99.199.250"}) {
    auto a = SocketAddress::fromIp(text, 8080);
    ASSERT_TRUE(a) << text;
    EXPECT_EQ(a->ip(), text);
    EXPECT_EQ(a->toString(), std::string(text) + ":8080");
  }
  EXPECT_EQ(SocketAddress::fromIp("127.0.0.1", 0)->toString(), "127.0.0.1:0");
  EXPECT_EQ(SocketAddress::fromIp("127.0.0.1", 65535)->toString(), "127.0.0.1:65535");
  EXPECT_EQ(SocketAddress().toString(), ":0");  // unset
  uint32_t x = 2463534242u;  // xorshift: reproducible addresses over the whole space
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = x;
    sin.sin_port = htons(static_cast<uint16_t>(x >> 7));
    char expected[INET_ADDRSTRLEN] = {};
    ASSERT_NE(::inet_ntop(AF_INET, &sin.sin_addr, expected, sizeof(expected)), nullptr);
    auto a = SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
    ASSERT_EQ(a.ip(), expected);
    ASSERT_EQ(a.toString(), std::string(expected) + ":" + std::to_string(static_cast<uint16_t>(x >> 7)));
  }
}

}  // namespace
}  // namespace sluice
