// Address plan of the simulated cluster. Pure functions, so the plan is testable on its own.
//
//   underlay (one bridge in its own netns)   172.30.0.0/24      fd00:172:30::/64
//   node i on the underlay                   172.30.0.(10+i)    fd00:172:30::(10+i)
//   pods of node i (CNI host-local ranges)   10.244.i.0/24      fd00:10:244:i::/64
//   gateway of node i's pod bridge           10.244.i.1         fd00:10:244:i::1
//
// Every address lives inside the simulation's own network namespaces, so two concurrent runs
// can use the same plan without meeting, and the machine's own network is never touched.
#pragma once

#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::sim {

// Node indexes are limited so that 10+i fits an IPv4 octet and i fits a /24 per node.
inline constexpr int kMaxNodes = 200;

struct NodeAddressing {
  std::string underlayV4;  // "172.30.0.10"
  std::string underlayV6;  // "fd00:172:30::a"
  std::string podCidrV4;   // "10.244.0.0/24"
  std::string podCidrV6;   // "fd00:10:244:0::/64"
};

inline constexpr int kUnderlayPrefixV4 = 24;
inline constexpr int kUnderlayPrefixV6 = 64;

Result<NodeAddressing> nodeAddressing(int nodeIndex);

struct Route {
  std::string destination;  // CIDR
  std::string via;          // next hop on the underlay
  bool operator==(const Route&) const = default;
};

// Routes node `self` needs to reach the pods of every other node through that node.
std::vector<Route> routesToOtherNodes(int self, int nodeCount);

}  // namespace sluice::sim
