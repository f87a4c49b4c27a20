// The capability check every program runs at start: which needed capabilities a given
// effective set lacks, and the error that names them.
#include "sluice/common/process_requirements.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

#include <string>
#include <vector>

namespace sluice {
namespace {

ProcessRequirements needs() {
  return {.program = "prog",
          .capabilities = {{CAP_BPF, "CAP_BPF", "load programs"}, {CAP_NET_ADMIN, "CAP_NET_ADMIN", "attach them"}},
          .hostPaths = {{"/sys/fs/bpf", "pins"}}};
}

uint64_t bit(int cap) { return uint64_t{1} << cap; }

struct MissingCase {
  const char* name;
  uint64_t effective;
  std::vector<std::string> missing;
};

TEST(ProcessRequirements, MissingCapabilitiesAreThoseNotEffective) {
  const MissingCase cases[] = {
      {"none held", 0, {"CAP_BPF", "CAP_NET_ADMIN"}},
      {"all held", bit(CAP_BPF) | bit(CAP_NET_ADMIN), {}},
      {"one held", bit(CAP_BPF), {"CAP_NET_ADMIN"}},
      {"others held", bit(CAP_SYS_ADMIN) | bit(CAP_CHOWN), {"CAP_BPF", "CAP_NET_ADMIN"}},
      {"everything held", ~uint64_t{0}, {}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> got;
    for (const auto& m : missingCapabilities(needs(), c.effective)) got.push_back(m.name);
    EXPECT_EQ(got, c.missing) << c.name;
  }
}

TEST(ProcessRequirements, JsonListsEveryNeedWithItsReason) {
  auto j = toJson(needs());
  EXPECT_EQ(j["program"], "prog");
  ASSERT_EQ(j["capabilities"].size(), 2u);
  EXPECT_EQ(j["capabilities"][1]["name"], "CAP_NET_ADMIN");
  EXPECT_EQ(j["capabilities"][1]["why"], "attach them");
  ASSERT_EQ(j["hostPaths"].size(), 1u);
  EXPECT_EQ(j["hostPaths"][0]["hostPath"], "/sys/fs/bpf");
}

TEST(ProcessRequirements, ThisProcessReadsItsEffectiveSet) {
  auto effective = effectiveCapabilities();
  ASSERT_TRUE(effective) << effective.error().message();
  // A capability no process can hold (beyond CAP_LAST_CAP) is always missing, and named.
  ProcessRequirements impossible{.program = "prog", .capabilities = {{63, "CAP_NONE", "never granted"}}, .hostPaths = {}};
  auto ok = checkCapabilities(impossible);
  ASSERT_FALSE(ok);
  EXPECT_NE(ok.error().message().find("prog lacks a capability it needs: CAP_NONE (never granted)"), std::string::npos)
      << ok.error().message();
}

}  // namespace
}  // namespace sluice
