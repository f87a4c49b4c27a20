#include "simcluster/run_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "sluice/common/mounts.h"
#include "sluice/common/unique_fd.h"

namespace sluice::sim {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kPrefixHead = "slc";
constexpr size_t kPrefixHexDigits = 5;

Status makeDir(const std::string& path, mode_t mode = 0755) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return fail(fmt::format("create {}: {}", path, ec.message()));
  ::chmod(path.c_str(), mode);
  return {};
}

std::vector<std::string> listDir(const std::string& path) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

// An exclusive lock on the state root, so two runs never reap each other's half-made objects.
class RegistryLock {
 public:
  explicit RegistryLock(const SimPaths& paths)
      : fd_(::open((paths.stateRoot + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_) ::flock(fd_.get(), LOCK_EX);
  }

 private:
  UniqueFd fd_;  // closing it releases the lock
};

std::optional<unsigned long long> startTimeOf(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return startTimeFromStat(text.str());
}

}  // namespace

// Kills every process in the cgroup subtree and waits until it is empty, then removes the
// folders bottom-up (a cgroup can only be removed once it has no processes and no children).
Status removeCgroupTree(const std::string& root) {
  if (!fs::exists(root)) return {};
  {
    std::ofstream kill(root + "/cgroup.kill");
    if (kill) kill << "1";  // recursive SIGKILL (kernel >= 5.14)
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::ifstream events(root + "/cgroup.events");
    std::string line;
    bool populated = false;
    while (std::getline(events, line)) {
      if (line == "populated 1") populated = true;
    }
    if (!populated) break;
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(fmt::format("processes in {} did not exit after SIGKILL", root));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Deepest first: collect directories, remove in reverse order of discovery depth.
  std::vector<std::string> dirs;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (it->is_directory()) dirs.push_back(it->path().string());
  }
  std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  dirs.push_back(root);
  for (const auto& dir : dirs) {
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return failErrno("rmdir " + dir);
  }
  return {};
}

// Deletes a named network namespace the way `ip netns del` does: unmount the bind mount that
// keeps it alive, then remove the file. The namespace is freed once no process is left in it.
Status removeNamedNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return failErrno("umount " + path);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return failErrno("unlink " + path);
  return {};
}

Result<SimPaths> detectSimPaths() {
  auto cgroup = cgroup2Root();
  if (!cgroup) return fail(std::move(cgroup.error()));
  auto bpffs = ensureBpffs();
  if (!bpffs) return fail(std::move(bpffs.error()));
  SimPaths paths{"/run/sluice-sim", "/run/netns", *cgroup + "/sluice-sim", *bpffs + "/sluice-sim"};
  SLUICE_TRY(makeDir(paths.stateRoot, 0700), "simulation state root");
  SLUICE_TRY(makeDir(paths.netnsDir), "netns folder");
  SLUICE_TRY(makeDir(paths.cgroupRoot), "simulation cgroup root");
  SLUICE_TRY(makeDir(paths.bpffsRoot, 0700), "simulation bpffs root");
  return paths;
}

std::string newRunPrefix() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> dist(0, (1u << (4 * kPrefixHexDigits)) - 1);
  return fmt::format("{}{:05x}", kPrefixHead, dist(rd));
}

bool isRunPrefix(std::string_view text) {
  if (text.size() != kPrefixHead.size() + kPrefixHexDigits) return false;
  if (text.substr(0, kPrefixHead.size()) != kPrefixHead) return false;
  for (char c : text.substr(kPrefixHead.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<std::string> runPrefixOf(std::string_view name) {
  size_t length = kPrefixHead.size() + kPrefixHexDigits;
  if (name.size() < length) return std::nullopt;
  std::string_view head = name.substr(0, length);
  if (!isRunPrefix(head)) return std::nullopt;
  // Objects are "<prefix>-<what>"; a run's state folder is staged as "<prefix>.claiming".
  if (name.size() > length && name[length] != '-' && name[length] != '.') return std::nullopt;
  return std::string(head);
}

std::optional<unsigned long long> startTimeFromStat(std::string_view statText) {
  // "pid (comm) state ppid ...": comm may contain spaces and ')', so split after the last ')'.
  size_t close = statText.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::istringstream rest{std::string(statText.substr(close + 1))};
  std::string field;
  // Fields after comm start at field 3 (state); starttime is field 22.
  for (int index = 3; index <= 22; ++index) {
    if (!(rest >> field)) return std::nullopt;
  }
  try {
    size_t used = 0;
    unsigned long long value = std::stoull(field, &used);
    if (used != field.size()) return std::nullopt;
    return value;
  } catch (...) {
    return std::nullopt;
  }
}

Status claimRun(const SimPaths& paths, const std::string& prefix) {
  RegistryLock lock(paths);
  std::string dir = paths.stateRoot + "/" + prefix;
  std::string staging = dir + ".claiming";
  if (fs::exists(dir)) return fail(fmt::format("run {} already exists", prefix));
  SLUICE_TRY(makeDir(staging, 0700), "claim run");
  auto start = startTimeOf(::getpid());
  {
    std::ofstream owner(staging + "/owner");
    owner << ::getpid() << ' ' << start.value_or(0) << '\n';
    if (!owner) return fail(fmt::format("write owner of run {}", prefix));
  }
  if (::rename(staging.c_str(), dir.c_str()) != 0) return failErrno("claim run " + prefix);
  return {};
}

bool runIsLive(const SimPaths& paths, const std::string& prefix) {
  std::ifstream owner(paths.stateRoot + "/" + prefix + "/owner");
  long pid = 0;
  unsigned long long start = 0;
  if (!(owner >> pid >> start) || pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  auto actual = startTimeOf(static_cast<pid_t>(pid));
  return actual && *actual == start;
}

std::vector<std::string> listRuns(const SimPaths& paths) {
  std::vector<std::string> runs;
  auto add = [&runs](std::string_view name) {
    if (auto prefix = runPrefixOf(name)) {
      if (std::find(runs.begin(), runs.end(), *prefix) == runs.end()) runs.push_back(*prefix);
    }
  };
  for (const auto& name : listDir(paths.stateRoot)) add(name);
  for (const auto& name : listDir(paths.netnsDir)) add(name);
  for (const auto& name : listDir(paths.cgroupRoot)) add(name);
  for (const auto& name : listDir(paths.bpffsRoot)) add(name);
  return runs;
}

std::vector<std::string> objectsOfRun(const SimPaths& paths, const std::string& prefix) {
  std::vector<std::string> objects;
  for (const auto& name : listDir(paths.netnsDir)) {
    if (runPrefixOf(name) == prefix) objects.push_back("netns " + name);
  }
  if (fs::exists(paths.cgroupRoot + "/" + prefix)) objects.push_back("cgroup " + paths.cgroupRoot + "/" + prefix);
  if (fs::exists(paths.bpffsRoot + "/" + prefix)) objects.push_back("bpffs " + paths.bpffsRoot + "/" + prefix);
  for (const auto& name : listDir(paths.stateRoot)) {
    if (runPrefixOf(name) == prefix) objects.push_back("state " + paths.stateRoot + "/" + name);
  }
  return objects;
}

Status removeRun(const SimPaths& paths, const std::string& prefix) {
  if (!isRunPrefix(prefix)) return fail(fmt::format("'{}' is not a simulation run prefix", prefix));
  Status first;
  auto note = [&first](Status s) {
    if (!s && first) first = std::move(s);
  };
  // Processes first: a namespace lives on while a process is inside it.
  note(removeCgroupTree(paths.cgroupRoot + "/" + prefix));
  for (const auto& name : listDir(paths.netnsDir)) {
    if (runPrefixOf(name) == prefix) note(removeNamedNetns(paths.netnsDir + "/" + name));
  }
  std::error_code ec;
  fs::remove_all(paths.bpffsRoot + "/" + prefix, ec);
  if (ec) note(fail(fmt::format("remove pins of run {}: {}", prefix, ec.message())));
  // The state folder goes last (see the invariant in the header).
  if (first) {
    for (const auto& name : listDir(paths.stateRoot)) {
      if (runPrefixOf(name) != prefix) continue;
      fs::remove_all(paths.stateRoot + "/" + name, ec);
      if (ec) note(fail(fmt::format("remove state of run {}: {}", prefix, ec.message())));
    }
  }
  return first;
}

Result<std::vector<std::string>> reapStaleRuns(const SimPaths& paths) {
  RegistryLock lock(paths);
  std::vector<std::string> reaped;
  for (const auto& prefix : listRuns(paths)) {
    if (runIsLive(paths, prefix)) continue;
    SLUICE_TRY(removeRun(paths, prefix), "remove stale run " + prefix);
    reaped.push_back(prefix);
  }
  return reaped;
}

}  // namespace sluice::sim
