// Privileged tests need root's capabilities (network namespaces, cgroups, BPF). Where they are
// missing the test is skipped with the reason, unless SLUICE_REQUIRE_PRIVILEGED=1 (CI), which
// turns the skip into a failure so a CI run can never pass by skipping.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace sluice::testing {

// Empty when this process may run privileged tests; otherwise what is missing.
std::string missingPrivileges();
bool privilegesRequired();

}  // namespace sluice::testing

#define SLUICE_REQUIRE_PRIVILEGES()                                                     \
  do {                                                                                  \
    std::string sluice_missing_ = ::sluice::testing::missingPrivileges();               \
    if (!sluice_missing_.empty()) {                                                     \
      if (::sluice::testing::privilegesRequired()) {                                    \
        FAIL() << "privileged test cannot run (" << sluice_missing_                     \
               << ") and SLUICE_REQUIRE_PRIVILEGED=1 forbids skipping";                 \
      }                                                                                 \
      GTEST_SKIP() << "needs privileges: " << sluice_missing_;                          \
    }                                                                                   \
  } while (0)
