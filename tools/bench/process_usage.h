// What the proxies of a benchmark row used while it ran, so a row can say what its work cost
// (CPU per GB, context switches per request, ...) and not only how fast it went.
//   - CPU seconds (utime + stime of every thread) and context switches (voluntary and
//     involuntary, summed over /proc/<pid>/task/*/status) and RSS, read from /proc;
//   - system calls, counted by `perf stat` on the raw_syscalls:sys_enter tracepoint when perf
//     is installed and allowed (else unknown: the bench prints "-").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/common/process.h"

namespace sluice::bench {

struct ProcessUsage {
  double cpuSeconds = 0;
  uint64_t contextSwitches = 0;
  ProcessUsage& operator+=(const ProcessUsage& o) {
    cpuSeconds += o.cpuSeconds;
    contextSwitches += o.contextSwitches;
    return *this;
  }
  ProcessUsage operator-(const ProcessUsage& o) const {
    return {cpuSeconds - o.cpuSeconds, contextSwitches >= o.contextSwitches ? contextSwitches - o.contextSwitches : 0};
  }
};

// Zero for a process that is gone.
ProcessUsage readUsage(pid_t pid);
ProcessUsage readUsage(const std::vector<pid_t>& pids);
// Resident memory in KiB, 0 when unknown: all of it (VmRSS, which counts the pages of shared
// libraries the process touched) and its anonymous part (RssAnon: heap, stacks, buffers).
uint64_t rssKiB(pid_t pid);
uint64_t anonymousRssKiB(pid_t pid);

// Counts the system calls of `pids` from start() to stop(), with perf in the background.
class SyscallCounter {
 public:
  // Nothing (no perf, or perf refused) when counting is not possible here.
  static std::optional<SyscallCounter> start(const std::vector<pid_t>& pids, const std::string& scratchDir);
  // The count; nothing when perf failed.
  std::optional<uint64_t> stop();

 private:
  SyscallCounter(ChildProcess perf, std::string output) : perf_(std::move(perf)), output_(std::move(output)) {}
  ChildProcess perf_;
  std::string output_;
};

// Parses `perf stat -x,` output: the count of the raw_syscalls:sys_enter line.
std::optional<uint64_t> parsePerfSyscalls(const std::string& text);

}  // namespace sluice::bench
