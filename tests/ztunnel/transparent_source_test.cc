// Which address an inbound delivery binds to for a client (PodSocketFactory's transparentSource):
// the client's IP in the target's notation, or none (the pod's own address is used).
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

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

TEST(DeliveryPorts, OneCursorVisitsEveryPortOfTheBindParityOncePerRoundAndScattersNeighbours) {
  struct Case {
    PortRange range;
    uint32_t ports;  // how many the cursor walks: those of the parity opposite to the first
  };
  const Case cases[] = {{{32768, 60999}, 14116}, {{1024, 65535}, 32256}, {{40000, 40099}, 50}, {{40000, 40100}, 50},
                        {{40001, 40002}, 1},     {{2000, 1000}, 500},     {{1, 65535}, 32767}};
  for (const auto& c : cases) {
    uint16_t low = std::min(c.range.first, c.range.last), high = std::max(c.range.first, c.range.last);
    std::set<uint16_t> seen;
    uint32_t adjacent = 0;
    for (uint32_t i = 0; i < c.ports; ++i) {
      uint16_t port = portAt(i, c.range);
      EXPECT_GE(port, low);
      EXPECT_LE(port, high);
      EXPECT_NE(port % 2, low % 2) << port << ": a port of the parity clients' connect() takes";
      seen.insert(port);
      if (i > 0 && std::abs(int(port) - int(portAt(i - 1, c.range))) == 2) ++adjacent;
    }
    EXPECT_EQ(seen.size(), c.ports) << low << "-" << high << ": every port of that parity once per round";
    EXPECT_EQ(portAt(c.ports, c.range), portAt(0, c.range)) << "the next round starts over";
    if (c.ports > 1000) {
      EXPECT_EQ(adjacent, 0u) << low << "-" << high << ": consecutive cursors got neighbouring ports";
    }
  }
  EXPECT_EQ(portAt(7, {5000, 5000}), 5000) << "a one-port range has only that port";
  EXPECT_EQ(portAt(4294967295u, {32768, 60999}), portAt(4294967295u % 14116, {32768, 60999}));
}

TEST(DeliveryPorts, ReadsTheKernelsEphemeralRangeAndRefusesAnythingElse) {
  struct Case {
    const char* text;
    std::optional<std::pair<uint16_t, uint16_t>> range;
  };
  const Case cases[] = {
      {"32768\t60999\n", std::pair<uint16_t, uint16_t>{32768, 60999}},
      {"1024 65535", std::pair<uint16_t, uint16_t>{1024, 65535}},
      {"60999\t32768\n", std::nullopt},  // first above last
      {"0\t100\n", std::nullopt},
      {"1024\t70000\n", std::nullopt},
      {"1024\n", std::nullopt},
      {"1024 2048 4096", std::nullopt},
      {"", std::nullopt},
      {"-5 100", std::nullopt},
  };
  for (const auto& c : cases) {
    auto range = parsePortRange(c.text);
    if (!c.range) {
      EXPECT_FALSE(range) << c.text;
    } else {
      ASSERT_TRUE(range) << c.text;
      EXPECT_EQ(range->first, c.range->first) << c.text;
      EXPECT_EQ(range->last, c.range->second) << c.text;
    }
  }
}

}  // namespace
}  // namespace sluice::ztunnel
