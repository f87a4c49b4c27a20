#include "simcluster/run_registry.h"

#include <gtest/gtest.h>

namespace sluice::sim {
namespace {

TEST(RunPrefix, NewPrefixesAreRecognised) {
  for (int i = 0; i < 100; ++i) {
    std::string prefix = newRunPrefix();
    EXPECT_TRUE(isRunPrefix(prefix)) << prefix;
    EXPECT_EQ(runPrefixOf(prefix + "-node0"), prefix);
  }
}

struct PrefixCase {
  const char* name;
  std::optional<std::string> prefix;
};

class RunPrefixOf : public ::testing::TestWithParam<PrefixCase> {};

TEST_P(RunPrefixOf, Table) { EXPECT_EQ(runPrefixOf(GetParam().name), GetParam().prefix) << GetParam().name; }

INSTANTIATE_TEST_SUITE_P(Table, RunPrefixOf,
                         ::testing::Values(PrefixCase{"slc0a1b2", "slc0a1b2"},
                                           PrefixCase{"slc0a1b2-node0-web", "slc0a1b2"},
                                           PrefixCase{"slc0a1b2.claiming", "slc0a1b2"},
                                           PrefixCase{"slc0a1b2x", std::nullopt},
                                           PrefixCase{"slc0A1b2-node0", std::nullopt},
                                           PrefixCase{"slc0a1b", std::nullopt},
                                           PrefixCase{"cni-1234", std::nullopt},
                                           PrefixCase{".lock", std::nullopt}));

TEST(StartTimeFromStat, ParsesField22EvenWithSpacesInComm) {
  std::string stat =
      "1234 (my prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 100 "
      "18446744073709551615";
  EXPECT_EQ(startTimeFromStat(stat), 987654ull);
  EXPECT_EQ(startTimeFromStat("1 (a) S 1 2"), std::nullopt);
  EXPECT_EQ(startTimeFromStat("garbage"), std::nullopt);
}

}  // namespace
}  // namespace sluice::sim
