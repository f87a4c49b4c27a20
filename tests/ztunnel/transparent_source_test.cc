// Which address an inbound delivery binds to for a client (PodSocketFactory's transparentSource):
// the client's IP in the target's notation, or none (the pod's own address is used).
#include <gtest/gtest.h>

#include "proxy/pod_socket_factory.h"

namespace sluice::ztunnel {
namespace {

struct SourceCase {
  const char* name;
  const char* client;  // as the listener saw it
  const char* target;  // the app's address the delivery connects to
  const char* source;  // nullptr: none
};

TEST(TransparentSource, TheClientsAddressInTheTargetsNotation) {
  const SourceCase cases[] = {
      {"IPv4 to IPv4", "10.244.0.2:40000", "10.244.1.3:8080", "10.244.0.2:0"},
      {"IPv4 seen on a dual-stack listener, IPv4 target", "[::ffff:10.244.0.2]:40000", "10.244.1.3:8080", "10.244.0.2:0"},
      {"IPv4 client, dual-stack target notation", "10.244.0.2:40000", "[::ffff:10.244.1.3]:8080", "[::ffff:10.244.0.2]:0"},
      {"IPv6 to IPv6", "[fd00:10:244::2]:40000", "[fd00:10:244:1::3]:8080", "[fd00:10:244::2]:0"},
      {"IPv6 client of an IPv4 target", "[fd00:10:244::2]:40000", "10.244.1.3:8080", nullptr},
      {"IPv4 client of an IPv6 target", "10.244.0.2:40000", "[fd00:10:244:1::3]:8080", nullptr},
      {"link-local IPv6 client", "[fe80::1]:40000", "[fe80::2]:8080", nullptr},
      {"unspecified IPv4", "0.0.0.0:40000", "10.244.1.3:8080", nullptr},
      {"unspecified IPv6", "[::]:40000", "[fd00:10:244:1::3]:8080", nullptr},
  };
  for (const auto& c : cases) {
    auto client = SocketAddress::parse(c.client);
    auto target = SocketAddress::parse(c.target);
    ASSERT_TRUE(client && target) << c.name;
    auto source = transparentSource(*client, *target);
    if (c.source == nullptr) {
      EXPECT_FALSE(source) << c.name << ": " << source->toString();
    } else {
      ASSERT_TRUE(source) << c.name;
      EXPECT_EQ(source->toString(), c.source) << c.name;
    }
  }
  // No client address at all (an unset one).
  EXPECT_FALSE(transparentSource(SocketAddress{}, *SocketAddress::parse("10.244.1.3:8080")));
}

}  // namespace
}  // namespace sluice::ztunnel
