// Where plaintext discovery may be served (controller/discovery/listen_policy.h): a table of
// the decision, and the controller refusing to start with a wide plaintext port next to its CA.
#include "discovery/listen_policy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "sluice/common/process.h"

namespace sluice::controller {
namespace {

TEST(PlaintextDiscovery, OffOrLoopbackOnlyWithTheCa) {
  struct Case {
    const char* what;
    const char* requested;
    bool explicitlySet, ca;
    const char* served;  // nullptr: refused
  };
  const Case cases[] = {
      {"no CA: the default", "0.0.0.0:15010", false, false, "0.0.0.0:15010"},
      {"no CA: as asked", "10.0.0.1:15010", true, false, "10.0.0.1:15010"},
      {"CA: off by default", "0.0.0.0:15010", false, true, ""},
      {"CA: loopback asked", "127.0.0.1:15010", true, true, "127.0.0.1:15010"},
      {"CA: IPv6 loopback", "[::1]:15010", true, true, "[::1]:15010"},
      {"CA: localhost", "localhost:15010", true, true, "localhost:15010"},
      {"CA: every address refused", "0.0.0.0:15010", true, true, nullptr},
      {"CA: a pod-reachable address refused", "10.0.0.1:15010", true, true, nullptr},
      {"CA: IPv6 any refused", "[::]:15010", true, true, nullptr},
      {"CA: a lookalike refused", "127example.com:15010", true, true, nullptr},
      {"CA: asked for none", "", true, true, ""},
  };
  for (const auto& c : cases) {
    auto served = plaintextDiscoveryAddress(c.requested, c.explicitlySet, c.ca);
    if (c.served == nullptr) {
      ASSERT_FALSE(served) << c.what;
      EXPECT_NE(served.error().message().find("serves loopback only"), std::string::npos) << served.error().message();
    } else {
      ASSERT_TRUE(served) << c.what << ": " << served.error().message();
      EXPECT_EQ(*served, c.served) << c.what;
    }
  }
}

TEST(PlaintextDiscovery, TheControllerRefusesAWidePlaintextPortBesideItsCa) {
  std::string dir = ::testing::TempDir() + "/listen_policy_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir + "/config");
  auto refused = run({.argv = {siblingProgram("sluice-controller"), "serve", "--config-dir", dir + "/config", "--ca-dir",
                               dir + "/ca", "--listen", "0.0.0.0:0", "--secure-listen", "127.0.0.1:0", "--status", "127.0.0.1:0"}},
                     {}, std::chrono::seconds(20));
  ASSERT_TRUE(refused) << refused.error().message();
  EXPECT_EQ(refused->exitCode, 1);
  EXPECT_NE(refused->err.find("--listen 0.0.0.0:0: with --ca-dir, plaintext discovery serves loopback only"), std::string::npos)
      << refused->err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::controller
