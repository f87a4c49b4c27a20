// Which of a pod's addresses a captured socket reports as its own (getsockname): the shared
// decision of bpf/sluice_decision.h, from a table of pods' address lists. The kernel programs
// are checked with real sockets in capture_datapath_test.
#include <gtest/gtest.h>

#include "capture/pod_capture_plan.h"
#include "sluice_decision.h"

namespace sluice::agent {
namespace {

struct LocalAddressCase {
  const char* name;
  std::vector<std::string> addresses;
  bool v4;       // the connection is IPv4 on the wire (an AF_INET socket, or a v4-mapped destination)
  int expected;  // index into addresses; -1: none of that family (the loopback address stays)
};

TEST(LocalAddressDecision, TheFirstPodAddressOfTheConnectionsFamily) {
  const LocalAddressCase cases[] = {
      {"IPv4 of a dual-stack pod", {"10.244.0.5", "fd00::5"}, true, 0},
      {"IPv6 of a dual-stack pod", {"10.244.0.5", "fd00::5"}, false, 1},
      {"IPv6 listed first", {"fd00::5", "10.244.0.5"}, true, 1},
      {"the first of two IPv4", {"10.244.0.5", "fd00::5", "10.245.0.5"}, true, 0},
      {"IPv4 on an IPv6-only pod", {"fd00::5"}, true, -1},
      {"IPv6 on an IPv4-only pod", {"10.244.0.5"}, false, -1},
      {"IPv4-mapped text counts as IPv4", {"fd00::5", "::ffff:10.244.0.5"}, true, 1},
  };
  for (const auto& c : cases) {
    auto plan = planPodCapture({.addresses = c.addresses});
    ASSERT_TRUE(plan) << c.name << ": " << plan.error().message();
    EXPECT_EQ(sluice_local_addr_index(&plan->pod, c.v4 ? 1 : 0), c.expected) << c.name;
  }
}

}  // namespace
}  // namespace sluice::agent
