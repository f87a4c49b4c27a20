#include "simcluster/addressing.h"

#include <fmt/format.h>

namespace sluice::sim {

Result<NodeAddressing> nodeAddressing(int nodeIndex) {
  if (nodeIndex < 0 || nodeIndex >= kMaxNodes) {
    return fail(fmt::format("node index {} out of range 0..{}", nodeIndex, kMaxNodes - 1));
  }
  NodeAddressing a;
  a.underlayV4 = fmt::format("172.30.0.{}", 10 + nodeIndex);
  a.underlayV6 = fmt::format("fd00:172:30::{:x}", 10 + nodeIndex);
  a.podCidrV4 = fmt::format("10.244.{}.0/24", nodeIndex);
  a.podCidrV6 = fmt::format("fd00:10:244:{:x}::/64", nodeIndex);
  return a;
}

std::vector<Route> routesToOtherNodes(int self, int nodeCount) {
  std::vector<Route> routes;
  for (int other = 0; other < nodeCount; ++other) {
    if (other == self) continue;
    auto a = nodeAddressing(other);
    if (!a) continue;  // out-of-range nodes are refused when they are created
    routes.push_back({a->podCidrV4, a->underlayV4});
    routes.push_back({a->podCidrV6, a->underlayV6});
  }
  return routes;
}

}  // namespace sluice::sim
