// Chaining sluice-cni into a node's CNI configuration: which file the runtime uses, appending
// after the primary plugin, idempotence, single-plugin files, and malformed input.
#include "cni/cni_chain.h"

#include <gtest/gtest.h>

namespace sluice::cni {
namespace {

using nlohmann::json;

struct PrimaryCase {
  std::vector<std::string> names;
  const char* primary;  // nullptr: none
};

TEST(CniChain, PrimaryConfigIsTheFirstConfigFileByName) {
  const PrimaryCase cases[] = {
      {{"10-calico.conflist", "99-loopback.conf"}, "10-calico.conflist"},
      {{"99-loopback.conf", "05-cilium.conflist"}, "05-cilium.conflist"},
      {{"10-flannel.conf"}, "10-flannel.conf"},
      {{"00-x.json", "10-y.conflist"}, "00-x.json"},
      {{"00-x.conflist.tmp", "README", "10-y.conflist"}, "10-y.conflist"},
      {{".00-hidden.conflist", "20-z.conflist"}, "20-z.conflist"},
      {{"README", "calico-kubeconfig"}, nullptr},
      {{}, nullptr},
  };
  for (const auto& c : cases) {
    auto got = primaryConfigFile(c.names);
    if (c.primary == nullptr) {
      EXPECT_FALSE(got) << *got;
    } else {
      ASSERT_TRUE(got) << c.primary;
      EXPECT_EQ(*got, c.primary);
    }
  }
}

TEST(CniChain, AppendsAfterThePrimaryPluginOnceAndUnchains) {
  json list = json::parse(R"({"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"},{"type":"portmap"}]})");
  auto entry = sluicePluginEntry("/run/sluice/agent.sock");
  auto once = chainPlugin(list, entry);
  ASSERT_TRUE(once) << once.error().message();
  ASSERT_EQ((*once)["plugins"].size(), 3u);
  EXPECT_EQ((*once)["plugins"][0]["type"], "calico");
  EXPECT_EQ((*once)["plugins"][2], entry);
  auto twice = chainPlugin(*once, entry);
  ASSERT_TRUE(twice);
  EXPECT_EQ(*twice, *once) << "installing again changes nothing";
  auto moved = chainPlugin(*once, sluicePluginEntry("/other.sock"));
  ASSERT_TRUE(moved);
  EXPECT_EQ((*moved)["plugins"].size(), 3u) << "a new socket replaces the old entry";
  EXPECT_EQ((*moved)["plugins"][2]["agentSocket"], "/other.sock");
  auto back = unchainPlugin(*once);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, list);
}

TEST(CniChain, SinglePluginConfigBecomesAList) {
  json conf = json::parse(R"({"cniVersion":"0.3.1","name":"flannel","type":"flannel","delegate":{"a":1}})");
  auto chained = chainPlugin(conf, sluicePluginEntry("/s"));
  ASSERT_TRUE(chained) << chained.error().message();
  EXPECT_EQ((*chained)["name"], "flannel");
  EXPECT_EQ((*chained)["cniVersion"], "0.3.1");
  ASSERT_EQ((*chained)["plugins"].size(), 2u);
  EXPECT_EQ((*chained)["plugins"][0], json::parse(R"({"type":"flannel","delegate":{"a":1}})"));
}

struct RefusedCase {
  const char* name;
  const char* config;
  const char* error;
};

TEST(CniChain, MalformedConfigurationIsRefusedNamingWhy) {
  const RefusedCase cases[] = {
      {"array", "[1]", "not a JSON object"},
      {"plugins not a list", R"({"plugins":{}})", "\"plugins\" is not a list"},
      {"plugin without type", R"({"plugins":[{"name":"x"}]})", "has no \"type\""},
      {"neither", R"({"name":"x"})", "neither \"plugins\" nor a plugin \"type\""},
      {"only sluice", R"({"plugins":[{"type":"sluice-cni"}]})", "primary plugin is missing"},
  };
  for (const auto& c : cases) {
    auto got = chainPlugin(json::parse(c.config), sluicePluginEntry("/s"));
    ASSERT_FALSE(got) << c.name;
    EXPECT_NE(got.error().message().find(c.error), std::string::npos) << c.name << ": " << got.error().message();
  }
}

}  // namespace
}  // namespace sluice::cni
