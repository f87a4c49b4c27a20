#include "simcluster/addressing.h"

#include <gtest/gtest.h>

namespace sluice::sim {
namespace {

struct NodeCase {
  int index;
  const char* underlayV4;
  const char* underlayV6;
  const char* podV4;
  const char* podV6;
};

class NodeAddressingTable : public ::testing::TestWithParam<NodeCase> {};

TEST_P(NodeAddressingTable, Plan) {
  const auto& c = GetParam();
  auto a = nodeAddressing(c.index);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->underlayV4, c.underlayV4);
  EXPECT_EQ(a->underlayV6, c.underlayV6);
  EXPECT_EQ(a->podCidrV4, c.podV4);
  EXPECT_EQ(a->podCidrV6, c.podV6);
}

INSTANTIATE_TEST_SUITE_P(
    Table, NodeAddressingTable,
    ::testing::Values(NodeCase{0, "172.30.0.10", "fd00:172:30::a", "10.244.0.0/24", "fd00:10:244:0::/64"},
                      NodeCase{1, "172.30.0.11", "fd00:172:30::b", "10.244.1.0/24", "fd00:10:244:1::/64"},
                      NodeCase{199, "172.30.0.209", "fd00:172:30::d1", "10.244.199.0/24",
                               "fd00:10:244:c7::/64"}));

TEST(NodeAddressing, RefusesOutOfRange) {
  EXPECT_FALSE(nodeAddressing(-1));
  auto tooBig = nodeAddressing(kMaxNodes);
  ASSERT_FALSE(tooBig);
  EXPECT_NE(tooBig.error().message().find("out of range"), std::string::npos);
}

TEST(RoutesToOtherNodes, EveryOtherNodeBothFamilies) {
  auto routes = routesToOtherNodes(1, 3);
  std::vector<Route> expected = {
      {"10.244.0.0/24", "172.30.0.10"}, {"fd00:10:244:0::/64", "fd00:172:30::a"},
      {"10.244.2.0/24", "172.30.0.12"}, {"fd00:10:244:2::/64", "fd00:172:30::c"}};
  EXPECT_EQ(routes, expected);
  EXPECT_TRUE(routesToOtherNodes(0, 1).empty());
}

}  // namespace
}  // namespace sluice::sim
