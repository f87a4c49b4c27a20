// AuthorizationPolicy ipBlocks: what parses (addresses, CIDR blocks of both families) and what
// is refused with a reason, and which addresses a block contains.
#include "sluice/common/ip_block.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(IpBlock, ParsesAddressesAndBlocksAndRefusesTheRest) {
  struct Case {
    const char* text;
    bool ok;
    int prefixBits;  // when ok
  };
  const Case cases[] = {
      {"10.0.0.0/8", true, 8},   {"10.1.2.3", true, 32},    {"0.0.0.0/0", true, 0},     {"fd00::/64", true, 64},
      {"fd00::1", true, 128},    {"::/0", true, 0},         {"10.0.0.0/33", false, 0},  {"fd00::/129", false, 0},
      {"10.0.0.0/", false, 0},   {"10.0.0.0/8x", false, 0}, {"10.0.0/8", false, 0},     {"10.0.0.0/-1", false, 0},
      {"", false, 0},            {"web", false, 0},         {"10.0.0.0 /8", false, 0},  {"1.2.3.4/+8", false, 0},
  };
  for (const auto& c : cases) {
    auto block = parseIpBlock(c.text);
    EXPECT_EQ(block.has_value(), c.ok) << c.text;
    if (block && c.ok) {
      EXPECT_EQ(block->prefixBits, c.prefixBits) << c.text;
    }
    if (!block) {
      EXPECT_NE(block.error().find(c.text), std::string::npos) << "the error names the block: " << block.error();
    }
  }
}

TEST(IpBlock, ContainsTheAddressesOfItsPrefixOnly) {
  struct Case {
    const char* block;
    const char* ip;
    bool inside;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true}, {"10.0.0.0/8", "11.0.0.1", false}, {"10.1.2.3", "10.1.2.3", true},
      {"10.1.2.3", "10.1.2.4", false},    {"0.0.0.0/0", "192.168.1.1", true}, {"0.0.0.0/0", "fd00::1", false},
      {"fd00::/64", "fd00::5", true},     {"fd00::/64", "fd00:0:0:1::5", false}, {"10.0.0.0/8", "garbage", false},
  };
  for (const auto& c : cases) {
    auto block = parseIpBlock(c.block);
    ASSERT_TRUE(block) << c.block;
    EXPECT_EQ(blockContains(*block, c.ip), c.inside) << c.block << " " << c.ip;
  }
}

}  // namespace
}  // namespace sluice
