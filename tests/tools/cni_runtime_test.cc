#include "simcluster/cni_runtime.h"

#include <gtest/gtest.h>

namespace sluice::sim {
namespace {

using nlohmann::json;

TEST(PluginNetconf, AddsNameVersionAndPrevResult) {
  CniConfList list{.name = "net", .cniVersion = "1.0.0",
                   .plugins = {json{{"type", "bridge"}}, json{{"type", "sluice-cni"}, {"x", 1}}}};
  json first = pluginNetconf(list, 0, nullptr);
  EXPECT_EQ(first, (json{{"type", "bridge"}, {"name", "net"}, {"cniVersion", "1.0.0"}}));
  json prev = {{"ips", json::array()}};
  json second = pluginNetconf(list, 1, &prev);
  EXPECT_EQ(second["prevResult"], prev);
  EXPECT_EQ(second["x"], 1);
  EXPECT_EQ(second["name"], "net");
}

TEST(CniEnvironment, StandardVariables) {
  CniTarget target{.containerId = "c1", .netnsPath = "/run/netns/p", .ifName = "eth0",
                   .pluginPath = "/usr/lib/cni:/opt/cni/bin", .args = "K8S_POD_NAME=web"};
  auto env = cniEnvironment("ADD", target);
  EXPECT_EQ(env, (std::vector<std::string>{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1",
                                           "CNI_NETNS=/run/netns/p", "CNI_IFNAME=eth0",
                                           "CNI_PATH=/usr/lib/cni:/opt/cni/bin", "CNI_ARGS=K8S_POD_NAME=web"}));
}

TEST(FindPlugin, SearchesEveryFolderOfThePath) {
  auto found = findPlugin("/nonexistent:/bin", "sh");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(*found, "/bin/sh");
  auto missing = findPlugin("/nonexistent:/bin", "no-such-plugin");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("\"no-such-plugin\" not found in CNI_PATH /nonexistent:/bin"),
            std::string::npos) << missing.error().message();
}

struct FailureCase {
  const char* out;
  const char* err;
  const char* expected;
};

class PluginFailure : public ::testing::TestWithParam<FailureCase> {};

TEST_P(PluginFailure, Describes) {
  const auto& c = GetParam();
  EXPECT_EQ(describePluginFailure("bridge", 1, c.out, c.err), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PluginFailure,
    ::testing::Values(
        FailureCase{R"({"code":11,"msg":"no IP addresses available","details":"range full"})", "",
                    "CNI plugin bridge failed (code 11): no IP addresses available (range full)"},
        FailureCase{R"({"code":7,"msg":"bad netconf"})", "", "CNI plugin bridge failed (code 7): bad netconf"},
        FailureCase{"", "panic: nil\n", "CNI plugin bridge exited with 1: panic: nil"},
        FailureCase{"not json", "", "CNI plugin bridge exited with 1: not json"},
        FailureCase{"", "", "CNI plugin bridge exited with 1: no output"}));

TEST(AddressesFromResult, PicksTheSandboxInterface) {
  json result = json::parse(R"({
    "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/p"}],
    "ips": [{"interface": 0, "address": "10.244.0.1/24"},
            {"interface": 2, "address": "10.244.0.2/24", "gateway": "10.244.0.1"},
            {"interface": 2, "address": "fd00:10:244::2/64"}]})");
  auto a = addressesFromResult(result, "eth0");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->ipv4, "10.244.0.2");
  EXPECT_EQ(a->ipv6, "fd00:10:244::2");
}

TEST(AddressesFromResult, RefusesMalformed) {
  EXPECT_FALSE(addressesFromResult(json::parse(R"({"ips": "x"})"), "eth0"));
  EXPECT_FALSE(addressesFromResult(json::parse(R"({"ips": [{"address": 5}]})"), "eth0"));
  EXPECT_FALSE(addressesFromResult(json::parse(R"({"ips": [{"interface": 9, "address": "1.2.3.4/8"}]})"), "eth0"));
  EXPECT_FALSE(addressesFromResult(json::parse(R"({"ips": []})"), "eth0"));
  EXPECT_FALSE(addressesFromResult(json::array(), "eth0"));
}

}  // namespace
}  // namespace sluice::sim
