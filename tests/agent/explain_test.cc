#include "daemon/explain.h"

#include <gtest/gtest.h>

namespace sluice::agent {
namespace {

PodCapturePlan planWith(std::map<std::string, std::string> annotations, std::map<std::string, std::string> labels = {}) {
  auto plan = planPodCapture({.addresses = {"10.244.0.2", "fd00:10:244::2"}, .labels = labels,
                              .annotations = annotations});
  EXPECT_TRUE(plan) << plan.error().message();
  return *plan;
}

struct ExplainCase {
  const char* description;
  std::map<std::string, std::string> annotations;
  std::map<std::string, std::string> labels;
  bool redirectOn;
  bool marked;
  const char* to;
  const char* reason;
  bool redirected;
};

class ExplainOutbound : public ::testing::TestWithParam<ExplainCase> {};

TEST_P(ExplainOutbound, Table) {
  const auto& c = GetParam();
  auto to = SocketAddress::parse(c.to);
  ASSERT_TRUE(to);
  auto verdict = explainOutbound(planWith(c.annotations, c.labels), c.redirectOn, *to, c.marked);
  EXPECT_STREQ(reasonName(verdict.reason), c.reason) << c.description << ": " << verdict.why;
  EXPECT_EQ(verdict.redirected, c.redirected) << c.description;
  EXPECT_FALSE(verdict.why.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ExplainOutbound,
    ::testing::Values(
        ExplainCase{"another pod", {}, {}, true, false, "10.244.1.2:80", "redirected", true},
        ExplainCase{"ipv6 pod", {}, {}, true, false, "[fd00:10:244:1::2]:80", "redirected", true},
        ExplainCase{"v4-mapped", {}, {}, true, false, "[::ffff:10.244.1.2]:80", "redirected", true},
        ExplainCase{"redirect off", {}, {}, false, false, "10.244.1.2:80", "not_captured", false},
        ExplainCase{"opted out", {}, {{"istio.io/dataplane-mode", "none"}}, true, false, "10.244.1.2:80", "not_captured", false},
        ExplainCase{"tunnel mark", {}, {}, true, true, "10.244.1.2:80", "bypass_mark", false},
        ExplainCase{"loopback v4", {}, {}, true, false, "127.0.0.53:53", "excluded_loopback", false},
        ExplainCase{"loopback v6", {}, {}, true, false, "[::1]:80", "excluded_loopback", false},
        ExplainCase{"loopback v4-mapped", {}, {}, true, false, "[::ffff:127.0.0.1]:80", "excluded_loopback", false},
        ExplainCase{"own address", {}, {}, true, false, "10.244.0.2:8080", "excluded_self", false},
        ExplainCase{"own ipv6 address", {}, {}, true, false, "[fd00:10:244::2]:8080", "excluded_self", false},
        ExplainCase{"excluded port", {{kExcludeOutboundPorts, "5432"}}, {}, true, false, "10.96.0.5:5432", "excluded_port", false},
        ExplainCase{"other port", {{kExcludeOutboundPorts, "5432"}}, {}, true, false, "10.96.0.5:5433", "redirected", true},
        ExplainCase{"excluded v4 cidr", {{kExcludeOutboundRanges, "10.96.0.0/12"}}, {}, true, false, "10.100.1.1:80", "excluded_cidr", false},
        ExplainCase{"outside v4 cidr", {{kExcludeOutboundRanges, "10.96.0.0/12"}}, {}, true, false, "10.112.0.1:80", "redirected", true},
        ExplainCase{"v4 cidr does not cover v6", {{kExcludeOutboundRanges, "0.0.0.0/0"}}, {}, true, false, "[fd00::1]:80", "redirected", true},
        ExplainCase{"excluded v6 cidr", {{kExcludeOutboundRanges, "fd00:10:244:1::/64"}}, {}, true, false, "[fd00:10:244:1::9]:80", "excluded_cidr", false}));

}  // namespace
}  // namespace sluice::agent
