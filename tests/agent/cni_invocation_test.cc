#include "cni/cni_invocation.h"

#include <gtest/gtest.h>

namespace sluice::cni {
namespace {

using nlohmann::json;

std::map<std::string, std::string> env(std::string command) {
  return {{"CNI_COMMAND", command}, {"CNI_CONTAINERID", "c1"}, {"CNI_NETNS", "/run/netns/p"},
          {"CNI_IFNAME", "eth0"}, {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=u1"}};
}

const char* kPrev = R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/run/netns/p"}],
  "ips":[{"interface":0,"address":"10.244.0.1/24"},{"interface":1,"address":"10.244.0.7/24"},
         {"interface":1,"address":"fd00:10:244::7/64"}]})";

std::string conf(std::string extra = "") {
  return std::string(R"({"cniVersion":"1.0.0","name":"net","type":"sluice-cni")") + extra +
         R"(,"prevResult":)" + kPrev + "}";
}

struct BadCase {
  const char* description;
  std::map<std::string, std::string> env;
  std::string stdinText;
  int code;
  const char* fragment;
};

class ParseInvocationRefuses : public ::testing::TestWithParam<BadCase> {};

TEST_P(ParseInvocationRefuses, Table) {
  const auto& c = GetParam();
  auto inv = parseInvocation(c.env, c.stdinText);
  ASSERT_FALSE(inv) << c.description;
  EXPECT_EQ(inv.error().code, c.code) << c.description;
  std::string text = inv.error().msg + " " + inv.error().details;
  EXPECT_NE(text.find(c.fragment), std::string::npos) << c.description << ": " << text;
}

std::map<std::string, std::string> without(std::map<std::string, std::string> e, const char* key) {
  e.erase(key);
  return e;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseInvocationRefuses,
    ::testing::Values(
        BadCase{"no command", without(env("ADD"), "CNI_COMMAND"), conf(), kInvalidEnvironment, "CNI_COMMAND is not set"},
        BadCase{"unknown command", env("GC"), conf(), kInvalidEnvironment, "got 'GC'"},
        BadCase{"no container", without(env("ADD"), "CNI_CONTAINERID"), conf(), kInvalidEnvironment, "CNI_CONTAINERID"},
        BadCase{"no netns on ADD", without(env("ADD"), "CNI_NETNS"), conf(), kInvalidEnvironment, "CNI_NETNS"},
        BadCase{"no ifname", without(env("ADD"), "CNI_IFNAME"), conf(), kInvalidEnvironment, "CNI_IFNAME"},
        BadCase{"not json", env("ADD"), "{nope", kDecodeFailure, "not a JSON object"},
        BadCase{"json array", env("ADD"), "[1]", kDecodeFailure, "not a JSON object"},
        BadCase{"no version", env("ADD"), R"({"name":"n"})", kInvalidNetworkConfig, "cniVersion"},
        BadCase{"old version", env("ADD"), R"({"cniVersion":"0.2.0"})", kIncompatibleVersion, "0.2.0 is not supported"},
        BadCase{"not chained", env("ADD"), R"({"cniVersion":"1.0.0"})", kInvalidNetworkConfig, "must be chained"},
        BadCase{"bad prevResult", env("ADD"), R"({"cniVersion":"1.0.0","prevResult":"x"})", kInvalidNetworkConfig, "prevResult"},
        BadCase{"bad socket", env("ADD"), conf(R"(,"agentSocket":7)"), kInvalidNetworkConfig, "agentSocket"},
        BadCase{"bad timeout", env("ADD"), conf(R"(,"timeoutSeconds":0)"), kInvalidNetworkConfig, "timeoutSeconds"},
        BadCase{"huge", env("ADD"), std::string(kMaxNetconfBytes + 1, ' '), kDecodeFailure, "larger than 1 MiB"}));

TEST(ParseInvocation, AddBuildsTheAgentRequest) {
  auto inv = parseInvocation(env("ADD"), conf(R"(,"agentSocket":"/tmp/a.sock")"));
  ASSERT_TRUE(inv) << inv.error().msg;
  EXPECT_EQ(inv->agentSocket, "/tmp/a.sock");
  json request = agentRequest(*inv);
  EXPECT_EQ(request["op"], "cni");
  EXPECT_EQ(request["command"], "ADD");
  EXPECT_EQ(request["namespace"], "shop");
  EXPECT_EQ(request["name"], "web");
  EXPECT_EQ(request["uid"], "u1");
  EXPECT_EQ(request["addresses"], (json{"10.244.0.7", "fd00:10:244::7"}));  // not the bridge's gateway
}

TEST(ParseInvocation, DelNeedsNoNetnsNorPrevResult) {
  auto inv = parseInvocation(without(env("DEL"), "CNI_NETNS"), R"({"cniVersion":"1.0.0"})");
  ASSERT_TRUE(inv) << inv.error().msg;
  EXPECT_EQ(agentRequest(*inv)["command"], "DEL");
}

TEST(ParseInvocation, VersionNeedsNothing) {
  auto inv = parseInvocation({{"CNI_COMMAND", "VERSION"}}, "");
  ASSERT_TRUE(inv);
  EXPECT_EQ(versionJson()["supportedVersions"].size(), 4u);
}

TEST(ErrorJson, CarriesCodeMessageDetails) {
  json j = errorJson("0.4.0", {kEnrollmentRefused, "refused", "no tunnel"});
  EXPECT_EQ(j, (json{{"cniVersion", "0.4.0"}, {"code", 100}, {"msg", "refused"}, {"details", "no tunnel"}}));
}

}  // namespace
}  // namespace sluice::cni
