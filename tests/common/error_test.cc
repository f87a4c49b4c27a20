#include "sluice/common/error.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

Status failsWithErrno() { return failErrno("open /nowhere", ENOENT); }

Status layered() {
  SLUICE_TRY(failsWithErrno(), "load config");
  return {};
}

Result<int> succeeds() { return 7; }

Status passesThrough(int& out) {
  auto value = succeeds();
  SLUICE_TRY(value, "never");
  out = *value;
  return {};
}

TEST(Error, ContextIsPrependedOutermostFirst) {
  auto status = layered();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message(), "load config: open /nowhere: No such file or directory");
  EXPECT_EQ(status.error().code(), ENOENT);
}

TEST(Error, TryPassesSuccessThrough) {
  int out = 0;
  ASSERT_TRUE(passesThrough(out));
  EXPECT_EQ(out, 7);
}

TEST(Error, PlainFailureHasNoCode) {
  Result<int> r = fail("bad weight 101 in route r1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), 0);
  EXPECT_EQ(r.error().message(), "bad weight 101 in route r1");
}

}  // namespace
}  // namespace sluice
