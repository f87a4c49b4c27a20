#include "sluice/common/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>

namespace sluice {
namespace {

bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesOnDestruction) {
  int raw;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    raw = fd.get();
    ASSERT_TRUE(isOpen(raw));
  }
  EXPECT_FALSE(isOpen(raw));
}

TEST(UniqueFd, MoveTransfersOwnership) {
  UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), raw);
  UniqueFd c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
  EXPECT_TRUE(isOpen(raw));
}

TEST(UniqueFd, ResetClosesThePrevious) {
  UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int first = a.get();
  a.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_FALSE(isOpen(first) && first != a.get());
  int released = a.release();
  EXPECT_FALSE(a.valid());
  EXPECT_TRUE(isOpen(released));
  ::close(released);
}

}  // namespace
}  // namespace sluice
