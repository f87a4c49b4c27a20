// Runs after every privileged test (a CTest cleanup fixture): no object of a finished
// simulation run may remain: no named network namespace, cgroup, bpffs pin or state folder of a
// run whose owner is gone, and no interface of the run in this machine's own namespace.
#include <gtest/gtest.h>

#include "simcluster/run_registry.h"
#include "sluice/common/process.h"
#include "support/privileged.h"

namespace sluice::sim {
namespace {

TEST(SimLeakCheck, NoObjectOfAFinishedRunRemains) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto paths = detectSimPaths();
  ASSERT_TRUE(paths) << paths.error().message();
  for (const auto& prefix : listRuns(*paths)) {
    if (runIsLive(*paths, prefix)) continue;  // someone's running cluster, not a leak
    for (const auto& object : objectsOfRun(*paths, prefix)) ADD_FAILURE() << "leaked: " << object;
  }
}

TEST(SimLeakCheck, NoInterfaceOfARunInTheHostNamespace) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto links = runChecked({.argv = {"ip", "-o", "link", "show"}});
  ASSERT_TRUE(links) << links.error().message();
  EXPECT_EQ(links->out.find(": slc"), std::string::npos) << links->out;
}

}  // namespace
}  // namespace sluice::sim
