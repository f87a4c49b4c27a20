// Starting child processes: optionally inside a network namespace and a cgroup, with stdin fed
// and stdout/stderr captured. Used to run CNI plugins, iproute2, and workloads in simulated pods.
//
// The child enters the namespace and cgroup between fork and exec, so the program starts
// already inside them: nothing it does, including its first connect(), escapes capture.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"

namespace sluice {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  // Added to (or overriding) the parent's environment, "NAME=value" each.
  std::vector<std::string> extraEnv;
  // When true, the child gets only extraEnv (plus PATH), not the parent's environment.
  bool cleanEnv = false;
  int netnsFd = -1;        // setns(CLONE_NEWNET) into this namespace when >= 0
  int cgroupProcsFd = -1;  // an open "cgroup.procs" file: the child moves itself there when >= 0
  bool captureOutput = false;  // stdout and stderr to pipes; otherwise inherited
  bool feedStdin = false;      // stdin from a pipe (written by run()); otherwise /dev/null
  bool dieWithParent = true;   // SIGKILL the child if the spawning thread dies
};

// A running child. Owns it: destruction kills (SIGKILL) and reaps it if it still runs.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd, UniqueFd stdinFd, UniqueFd stdoutFd, UniqueFd stderrFd);
  ~ChildProcess();
  ChildProcess(ChildProcess&&) noexcept;
  ChildProcess& operator=(ChildProcess&&) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exited_; }

  // Sends `signal`; a no-op after the child was reaped.
  Status signal(int signal);
  // Waits up to `timeout` for exit; returns the exit code (128+N when killed by signal N).
  // Fails with ETIMEDOUT if it still runs.
  Result<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM, up to `grace` to exit, then SIGKILL; returns the exit code.
  Result<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  UniqueFd& stdinPipe() { return stdin_; }
  UniqueFd& stdoutPipe() { return stdout_; }
  UniqueFd& stderrPipe() { return stderr_; }

 private:
  void killAndReap();

  pid_t pid_ = -1;
  bool exited_ = false;
  int exitCode_ = -1;
  UniqueFd pidfd_;
  UniqueFd stdin_, stdout_, stderr_;
};

Result<ChildProcess> spawn(const SpawnOptions& options);

struct RunOutput {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// Runs to completion, writing `input` to stdin and capturing output. A child still running at
// `timeout` is killed and the call fails with ETIMEDOUT.
Result<RunOutput> run(SpawnOptions options, std::string_view input = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

// run() that also fails when the exit code is not 0, with the command and its stderr in the
// message.
Result<RunOutput> runChecked(SpawnOptions options, std::string_view input = {},
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Reads one line (without the newline) from a child's pipe, waiting up to `timeout`; used to wait
// for a server's "listening ..." announcement. Reads byte by byte so nothing after the line is
// consumed. Fails at EOF or timeout.
Result<std::string> readLine(UniqueFd& pipe, std::chrono::milliseconds timeout);

// The first executable "<folder>/<name>" along a ':'-separated list of folders, if any.
std::optional<std::string> findInPath(std::string_view folders, std::string_view name);

// This process's environment as name -> value.
std::map<std::string, std::string> environmentVariables();

// For a daemon's main, before it starts any thread (threads inherit the mask): blocks SIGTERM
// and SIGINT, ignores SIGPIPE, and returns a signalfd that becomes readable when either arrives.
UniqueFd stopSignalFd();

// The path of another Sluice program installed beside the running one (same folder).
std::string siblingProgram(std::string_view name);

// "ip -n x link add ..." style one-liner for error messages.
std::string describeCommand(const std::vector<std::string>& argv);

// The number after "Field:" in a /proc status file (/proc/<pid>/status or a task's), e.g.
// VmRSS or voluntary_ctxt_switches (memory in KiB); 0 when the file or the field is missing.
uint64_t procStatusValue(const std::string& statusFile, std::string_view field);

}  // namespace sluice
