#include "capture/pod_capture_plan.h"

#include <gtest/gtest.h>

namespace sluice::agent {
namespace {

struct PlanCase {
  const char* description;
  PodCaptureSpec spec;
  bool ok;
  const char* errorFragment;  // when !ok
  bool optedOut;
};

class PlanPodCapture : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanPodCapture, Table) {
  const auto& c = GetParam();
  auto plan = planPodCapture(c.spec);
  ASSERT_EQ(plan.has_value(), c.ok) << c.description << (plan ? "" : ": " + plan.error().message());
  if (!c.ok) {
    EXPECT_NE(plan.error().message().find(c.errorFragment), std::string::npos)
        << c.description << ": " << plan.error().message();
    return;
  }
  EXPECT_EQ(plan->optedOut, c.optedOut) << c.description;
}

const std::vector<std::string> kAddrs = {"10.244.0.2", "fd00:10:244::2"};

INSTANTIATE_TEST_SUITE_P(
    Table, PlanPodCapture,
    ::testing::Values(
        PlanCase{"plain pod", {.addresses = kAddrs}, true, "", false},
        PlanCase{"ambient opt-out label", {.addresses = kAddrs, .labels = {{"istio.io/dataplane-mode", "none"}}}, true, "", true},
        PlanCase{"other dataplane-mode stays", {.addresses = kAddrs, .labels = {{"istio.io/dataplane-mode", "ambient"}}}, true, "", false},
        PlanCase{"sluice opt-out annotation", {.addresses = kAddrs, .annotations = {{"sluice.io/capture", "disabled"}}}, true, "", true},
        PlanCase{"opt-out needs no addresses", {.labels = {{"istio.io/dataplane-mode", "none"}}}, true, "", true},
        PlanCase{"unknown capture value", {.addresses = kAddrs, .annotations = {{"sluice.io/capture", "off"}}}, false, "neither 'enabled' nor 'disabled'", false},
        PlanCase{"no addresses", {}, false, "no addresses", false},
        PlanCase{"bad address", {.addresses = {"10.0.0.300"}}, false, "'10.0.0.300' is not an IP address", false},
        PlanCase{"too many addresses", {.addresses = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}}, false, "at most 4", false},
        PlanCase{"ports with spaces", {.addresses = kAddrs, .annotations = {{kExcludeOutboundPorts, " 5432, 6379 "}}}, true, "", false},
        PlanCase{"port 0", {.addresses = kAddrs, .annotations = {{kExcludeInboundPorts, "0"}}}, false, "'0' is not a port", false},
        PlanCase{"port too big", {.addresses = kAddrs, .annotations = {{kExcludeOutboundPorts, "70000"}}}, false, "'70000' is not a port", false},
        PlanCase{"port not a number", {.addresses = kAddrs, .annotations = {{kExcludeOutboundPorts, "http"}}}, false, "excludeOutboundPorts: 'http'", false},
        PlanCase{"too many ports", {.addresses = kAddrs, .annotations = {{kExcludeOutboundPorts, "1,2,3,4,5,6,7,8,9"}}}, false, "9 ports listed, at most 8", false},
        PlanCase{"cidr without bits", {.addresses = kAddrs, .annotations = {{kExcludeOutboundRanges, "10.0.0.0"}}}, false, "'10.0.0.0' is not a CIDR", false},
        PlanCase{"v4 cidr over 32", {.addresses = kAddrs, .annotations = {{kExcludeOutboundRanges, "10.0.0.0/33"}}}, false, "is not a CIDR", false},
        PlanCase{"v6 cidr", {.addresses = kAddrs, .annotations = {{kExcludeOutboundRanges, "fd00::/8"}}}, true, "", false}));

TEST(PlanPodCaptureValues, FillsTheKernelStruct) {
  auto plan = planPodCapture({.addresses = kAddrs,
                              .annotations = {{kExcludeOutboundPorts, "5432,6379"},
                                              {kExcludeInboundPorts, "9090"},
                                              {kExcludeOutboundRanges, "10.96.0.0/12, fd00::/8"}}});
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->pod.flags, 0u) << "redirection is switched on only after the tunnel acknowledged";
  EXPECT_EQ(plan->pod.addr_count, 2u);
  EXPECT_EQ(plan->pod.addrs[0][10], 0xff);  // IPv4 mapped into IPv6
  EXPECT_EQ(plan->pod.addrs[0][12], 10);
  EXPECT_EQ(plan->pod.addrs[1][0], 0xfd);
  EXPECT_EQ(plan->pod.exclude_outbound_ports[0], 5432);
  EXPECT_EQ(plan->pod.exclude_outbound_ports[1], 6379);
  EXPECT_EQ(plan->pod.exclude_outbound_ports[2], 0);
  EXPECT_EQ(plan->pod.exclude_inbound_ports[0], 9090);
  ASSERT_EQ(plan->excludedCidrs.size(), 2u);
  EXPECT_EQ(plan->excludedCidrs[0].prefixBits, 96u + 12u);
  EXPECT_EQ(plan->excludedCidrs[1].prefixBits, 8u);
}

}  // namespace
}  // namespace sluice::agent
