// Finding the kernel filesystems Sluice depends on: cgroup v2 (where cgroup BPF programs attach
// and pods' cgroups live) and bpffs (where maps and links are pinned). Their mount points vary
// between distributions and machines (cgroup2 is /sys/fs/cgroup on most systems, but
// /sys/fs/cgroup/unified under a hybrid hierarchy), so they are read from /proc/self/mounts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice {

// The mount point of the first mount of filesystem type `fsType` in `mountsText` (the format of
// /proc/self/mounts: "device mountpoint fstype options 0 0" per line, octal escapes in paths).
std::optional<std::string> findMountOfType(std::string_view mountsText, std::string_view fsType);

// Where cgroup v2 is mounted on this machine; fails when it is not mounted at all.
Result<std::string> cgroup2Root();

// Where bpffs is mounted; when it is not mounted anywhere, mounts it at /sys/fs/bpf first.
Result<std::string> ensureBpffs();

}  // namespace sluice
