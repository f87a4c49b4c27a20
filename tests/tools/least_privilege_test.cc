// The simulator runs the agent and the tunnel with only the capabilities they declare; this is
// the translation of a --print-requirements document into setpriv's bounding-set argument.
#include "simcluster/least_privilege.h"

#include <gtest/gtest.h>

namespace sluice::sim {
namespace {

struct BoundingCase {
  const char* name;
  const char* json;
  const char* expected;  // nullptr: refused
};

TEST(LeastPrivilege, BoundingSetFromRequirements) {
  const BoundingCase cases[] = {
      {"two", R"({"capabilities":[{"name":"CAP_BPF"},{"name":"CAP_NET_ADMIN"}]})", "-all,+bpf,+net_admin"},
      {"none", R"({"capabilities":[]})", "-all"},
      {"not json", "CAP_BPF", nullptr},
      {"no list", R"({"hostPaths":[]})", nullptr},
      {"no name", R"({"capabilities":[{"why":"x"}]})", nullptr},
      {"not a capability", R"({"capabilities":[{"name":"BPF"}]})", nullptr},
      {"injection", R"({"capabilities":[{"name":"CAP_BPF,+SYS_ADMIN"}]})", nullptr},
      {"bare prefix", R"({"capabilities":[{"name":"CAP_"}]})", nullptr},
  };
  for (const auto& c : cases) {
    auto got = boundingSetArgument(c.json);
    if (c.expected == nullptr) {
      EXPECT_FALSE(got) << c.name;
    } else {
      ASSERT_TRUE(got) << c.name << ": " << got.error().message();
      EXPECT_EQ(*got, c.expected) << c.name;
    }
  }
}

}  // namespace
}  // namespace sluice::sim
