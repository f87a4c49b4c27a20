#include "process_usage.h"

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "sluice/common/files.h"

#include <filesystem>
#include <sstream>

namespace sluice::bench {
namespace {

// The file's text, "" when it cannot be read (a process that is gone).
std::string textOf(const std::string& path) { return readFile(path).value_or(""); }

// utime + stime (fields 14 and 15 of /proc/<pid>/stat, all threads), in seconds.
double cpuSecondsOf(pid_t pid) {
  std::string text = textOf(fmt::format("/proc/{}/stat", pid));
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size()) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return double(utime + stime) / double(::sysconf(_SC_CLK_TCK));
}

}  // namespace

ProcessUsage readUsage(pid_t pid) {
  ProcessUsage usage{.cpuSeconds = cpuSecondsOf(pid)};
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::string status = task.path().string() + "/status";
    usage.contextSwitches += procStatusValue(status, "voluntary_ctxt_switches") + procStatusValue(status, "nonvoluntary_ctxt_switches");
  }
  return usage;
}

ProcessUsage readUsage(const std::vector<pid_t>& pids) {
  ProcessUsage total;
  for (pid_t pid : pids) total += readUsage(pid);
  return total;
}

uint64_t rssKiB(pid_t pid) { return procStatusValue(fmt::format("/proc/{}/status", pid), "VmRSS"); }
uint64_t anonymousRssKiB(pid_t pid) { return procStatusValue(fmt::format("/proc/{}/status", pid), "RssAnon"); }

std::optional<uint64_t> parsePerfSyscalls(const std::string& text) {
  // CSV lines: "<count>,<unit>,<event>,..."; "<not counted>" or "<not supported>" instead of a
  // count when perf could not count.
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("raw_syscalls:sys_enter") == std::string::npos) continue;
    size_t comma = line.find(',');
    if (comma == 0 || comma == std::string::npos) return std::nullopt;
    std::string count = line.substr(0, comma);
    if (count.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::strtoull(count.c_str(), nullptr, 10);
  }
  return std::nullopt;
}

std::optional<SyscallCounter> SyscallCounter::start(const std::vector<pid_t>& pids, const std::string& scratchDir) {
  if (pids.empty()) return std::nullopt;
  static const bool havePerf = findInPath("/usr/bin:/usr/sbin:/bin:/sbin", "perf").has_value();
  if (!havePerf) return std::nullopt;
  std::string list;
  for (pid_t pid : pids) list += (list.empty() ? "" : ",") + std::to_string(pid);
  std::string output = fmt::format("{}/perf-syscalls-{}.csv", scratchDir, ::getpid());
  std::filesystem::remove(output);
  auto perf = spawn({.argv = {"perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", list, "-o", output},
                     .captureOutput = true});
  if (!perf) return std::nullopt;
  ::usleep(100000);  // perf attaches to the tracepoint before the run starts
  return SyscallCounter(std::move(*perf), std::move(output));
}

std::optional<uint64_t> SyscallCounter::stop() {
  (void)perf_.signal(SIGINT);  // perf stat prints its counts when interrupted
  if (!perf_.wait(std::chrono::seconds(10))) return std::nullopt;
  auto count = parsePerfSyscalls(textOf(output_));
  std::filesystem::remove(output_);
  return count;
}

}  // namespace sluice::bench
