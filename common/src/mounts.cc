#include "sluice/common/mounts.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace sluice {
namespace {

// /proc/self/mounts escapes space, tab, newline and backslash as \ooo octal.
std::string unescapeMountField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = field[i + k];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

Result<std::string> readMounts() {
  std::ifstream in("/proc/self/mounts");
  if (!in) return failErrno("open /proc/self/mounts");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::string> findMountOfType(std::string_view mountsText, std::string_view fsType) {
  size_t pos = 0;
  while (pos < mountsText.size()) {
    size_t end = mountsText.find('\n', pos);
    if (end == std::string_view::npos) end = mountsText.size();
    std::string_view line = mountsText.substr(pos, end - pos);
    pos = end + 1;
    // Fields: device, mount point, type, ...
    size_t a = line.find(' ');
    if (a == std::string_view::npos) continue;
    size_t b = line.find(' ', a + 1);
    if (b == std::string_view::npos) continue;
    size_t c = line.find(' ', b + 1);
    std::string_view type = line.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
    if (type == fsType) return unescapeMountField(line.substr(a + 1, b - a - 1));
  }
  return std::nullopt;
}

Result<std::string> cgroup2Root() {
  auto mounts = readMounts();
  if (!mounts) return fail(std::move(mounts.error()));
  auto root = findMountOfType(*mounts, "cgroup2");
  if (!root) return fail("cgroup v2 is not mounted (no cgroup2 entry in /proc/self/mounts)");
  return *root;
}

Result<std::string> ensureBpffs() {
  auto mounts = readMounts();
  if (!mounts) return fail(std::move(mounts.error()));
  if (auto existing = findMountOfType(*mounts, "bpf")) return *existing;
  const char* target = "/sys/fs/bpf";
  if (::mkdir(target, 0700) != 0 && errno != EEXIST) return failErrno("mkdir /sys/fs/bpf");
  if (::mount("bpffs", target, "bpf", 0, "mode=0700") != 0) {
    return failErrno("mount bpffs at /sys/fs/bpf");
  }
  return std::string(target);
}

}  // namespace sluice
