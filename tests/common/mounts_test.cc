#include "sluice/common/mounts.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

struct MountCase {
  const char* description;
  const char* mounts;
  const char* type;
  std::optional<std::string> expected;
};

class FindMountOfType : public ::testing::TestWithParam<MountCase> {};

TEST_P(FindMountOfType, Finds) {
  const auto& c = GetParam();
  EXPECT_EQ(findMountOfType(c.mounts, c.type), c.expected) << c.description;
}

constexpr const char* kHybrid =
    "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
    "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

INSTANTIATE_TEST_SUITE_P(
    Table, FindMountOfType,
    ::testing::Values(
        MountCase{"unified hierarchy", "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "cgroup2",
                  "/sys/fs/cgroup"},
        MountCase{"hybrid hierarchy: v1 mounts first", kHybrid, "cgroup2", "/sys/fs/cgroup/unified"},
        MountCase{"v1 type is not v2", "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n", "cgroup2",
                  std::nullopt},
        MountCase{"bpffs", "bpf /sys/fs/bpf bpf rw 0 0\n", "bpf", "/sys/fs/bpf"},
        MountCase{"octal escape for space", "bpf /mnt/my\\040bpf bpf rw 0 0\n", "bpf", "/mnt/my bpf"},
        MountCase{"no trailing newline", "bpf /x bpf rw 0 0", "bpf", "/x"},
        MountCase{"truncated line ignored", "bpf /x\n", "bpf", std::nullopt},
        MountCase{"empty", "", "bpf", std::nullopt}));

TEST(Cgroup2Root, ExistsOnThisMachine) {
  auto root = cgroup2Root();
  ASSERT_TRUE(root) << root.error().message();
  EXPECT_FALSE(root->empty());
}

}  // namespace
}  // namespace sluice
