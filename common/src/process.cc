#include "sluice/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>


extern char** environ;

namespace sluice {
namespace {

int pidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

struct Pipe {
  UniqueFd read, write;
};

Result<Pipe> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return failErrno("pipe2");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// The child's environment: the parent's (unless cleanEnv) overridden by extraEnv.
std::vector<std::string> buildEnvironment(const SpawnOptions& options) {
  std::map<std::string, std::string> env;
  auto add = [&env](std::string_view entry) {
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) return;
    env[std::string(entry.substr(0, eq))] = std::string(entry);
  };
  if (!options.cleanEnv) {
    for (char** e = environ; *e != nullptr; ++e) add(*e);
  } else if (const char* path = std::getenv("PATH")) {
    add(std::string("PATH=") + path);
  }
  for (const auto& entry : options.extraEnv) add(entry);
  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [_, entry] : env) out.push_back(std::move(entry));
  return out;
}

}  // namespace

std::map<std::string, std::string> environmentVariables() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (size_t eq = entry.find('='); eq != std::string_view::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

namespace {

// Resolves argv[0] through PATH before fork, because execvpe's search allocates.
std::string resolveProgram(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& entry : env) {
    if (entry.rfind("PATH=", 0) == 0) path = entry.substr(5);
  }
  // Not found: exec fails with ENOENT and the error names the program.
  return findInPath(path, name).value_or(name);
}

// Reports the failed setup stage and errno to the parent, then exits.
[[noreturn]] void childFail(int errorFd, int stage) {
  int report[2] = {stage, errno};
  [[maybe_unused]] auto n = ::write(errorFd, report, sizeof(report));
  ::_exit(127);
}

// Between fork and exec only async-signal-safe calls: reports errno through `errorFd`.
[[noreturn]] void childAfterFork(const SpawnOptions& options, const char* program,
                                 char* const* argv, char* const* envp, int stdinFd,
                                 int stdoutFd, int stderrFd, int errorFd) {
  auto die = [errorFd](int stage) { childFail(errorFd, stage); };
  if (options.dieWithParent && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die(1);
  // Start with default signal handling and nothing blocked, like a freshly exec'd shell child.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(stdinFd, 0) < 0) die(2);
  if (stdoutFd >= 0 && ::dup2(stdoutFd, 1) < 0) die(2);
  if (stderrFd >= 0 && ::dup2(stderrFd, 2) < 0) die(2);
  if (options.cgroupProcsFd >= 0 && ::write(options.cgroupProcsFd, "0", 1) != 1) die(3);
  if (options.netnsFd >= 0 && ::setns(options.netnsFd, CLONE_NEWNET) != 0) die(4);
  ::execve(program, argv, envp);
  childFail(errorFd, 5);
}

const char* stageName(int stage) {
  switch (stage) {
    case 1: return "prctl(PR_SET_PDEATHSIG)";
    case 2: return "dup2";
    case 3: return "join cgroup";
    case 4: return "setns(netns)";
    case 5: return "execve";
    default: return "child setup";
  }
}

}  // namespace

std::optional<std::string> findInPath(std::string_view folders, std::string_view name) {
  size_t start = 0;
  while (start <= folders.size()) {
    size_t end = folders.find(':', start);
    if (end == std::string_view::npos) end = folders.size();
    std::string candidate = std::string(folders.substr(start, end - start)) + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

std::string describeCommand(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    out += arg;
  }
  return out;
}

ChildProcess::ChildProcess(pid_t pid, UniqueFd pidfd, UniqueFd stdinFd, UniqueFd stdoutFd,
                           UniqueFd stderrFd)
    : pid_(pid),
      pidfd_(std::move(pidfd)),
      stdin_(std::move(stdinFd)),
      stdout_(std::move(stdoutFd)),
      stderr_(std::move(stderrFd)) {}

ChildProcess::~ChildProcess() { killAndReap(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exited_(other.exited_),
      exitCode_(other.exitCode_),
      pidfd_(std::move(other.pidfd_)),
      stdin_(std::move(other.stdin_)),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    killAndReap();
    pid_ = std::exchange(other.pid_, -1);
    exited_ = other.exited_;
    exitCode_ = other.exitCode_;
    pidfd_ = std::move(other.pidfd_);
    stdin_ = std::move(other.stdin_);
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
  }
  return *this;
}

void ChildProcess::killAndReap() {
  if (pid_ <= 0 || exited_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
}

Status ChildProcess::signal(int sig) {
  if (pid_ <= 0 || exited_) return {};
  if (::kill(pid_, sig) != 0 && errno != ESRCH) return failErrno("kill " + std::to_string(pid_));
  return {};
}

Result<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return fail("wait: no child");
  if (exited_) return exitCode_;
  pollfd pfd{pidfd_.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) return failErrno("poll pidfd");
  if (ready == 0) return failErrno("wait for pid " + std::to_string(pid_), ETIMEDOUT);
  int status = 0;
  pid_t got;
  do {
    got = ::waitpid(pid_, &status, 0);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return failErrno("waitpid " + std::to_string(pid_));
  exited_ = true;
  exitCode_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exitCode_;
}

Result<int> ChildProcess::stop(std::chrono::milliseconds grace) {
  SLUICE_TRY(signal(SIGTERM), "stop");
  auto code = wait(grace);
  if (code) return code;
  SLUICE_TRY(signal(SIGKILL), "stop");
  return wait(std::chrono::seconds(10));
}

Result<ChildProcess> spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return fail("spawn: empty argv");

  // Everything the child needs is prepared here: after fork it may not allocate.
  std::vector<std::string> env = buildEnvironment(options);
  std::string program = resolveProgram(options.argv[0], env);
  std::vector<char*> argv, envp;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devNull) return failErrno("open /dev/null");
  Pipe in, out, err;
  if (options.feedStdin) {
    auto p = makePipe();
    if (!p) return fail(std::move(p.error()));
    in = std::move(*p);
  }
  if (options.captureOutput) {
    auto o = makePipe();
    if (!o) return fail(std::move(o.error()));
    out = std::move(*o);
    auto e = makePipe();
    if (!e) return fail(std::move(e.error()));
    err = std::move(*e);
  }
  auto errorPipe = makePipe();
  if (!errorPipe) return fail(std::move(errorPipe.error()));

  pid_t pid = ::fork();
  if (pid < 0) return failErrno("fork");
  if (pid == 0) {
    childAfterFork(options, program.c_str(), argv.data(), envp.data(),
                   options.feedStdin ? in.read.get() : devNull.get(),
                   options.captureOutput ? out.write.get() : -1,
                   options.captureOutput ? err.write.get() : -1, errorPipe->write.get());
  }

  UniqueFd pidfd(pidfdOpen(pid));
  if (!pidfd) {
    // Without a pidfd wait() cannot time out; don't hand out a child we can't manage.
    int code = errno;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return failErrno("pidfd_open for " + program, code);
  }
  errorPipe->write.reset();
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(errorPipe->read.get(), report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  ChildProcess child(pid, std::move(pidfd), std::move(in.write), std::move(out.read),
                     std::move(err.read));
  if (n == static_cast<ssize_t>(sizeof(report))) {
    (void)child.wait(std::chrono::seconds(5));
    return fail(errnoError(std::string(stageName(report[0])) + " for " + program, report[1]));
  }
  return child;
}

Result<RunOutput> run(SpawnOptions options, std::string_view input,
                      std::chrono::milliseconds timeout) {
  options.captureOutput = true;
  options.feedStdin = true;
  auto child = spawn(options);
  if (!child) return fail(std::move(child.error()).context(describeCommand(options.argv)));

  RunOutput result;
  size_t written = 0;
  if (input.empty()) {
    child->stdinPipe().reset();
  } else {
    // Non-blocking, so a child that stops reading stdin until we drain its stdout can't stall us.
    ::fcntl(child->stdinPipe().get(), F_SETFL, O_NONBLOCK);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[16384];
  // Feed stdin and drain both outputs together: a child that fills one pipe while we block on
  // another would deadlock.
  while (child->stdoutPipe().valid() || child->stderrPipe().valid()) {
    pollfd fds[3];
    int count = 0;
    auto addFd = [&](UniqueFd& fd, short events) {
      if (fd.valid()) fds[count++] = pollfd{fd.get(), events, 0};
    };
    addFd(child->stdoutPipe(), POLLIN);
    addFd(child->stderrPipe(), POLLIN);
    addFd(child->stdinPipe(), POLLOUT);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail(errnoError(describeCommand(options.argv) + " did not finish within " +
                                 std::to_string(timeout.count()) + " ms",
                             ETIMEDOUT));
    }
    int ready = ::poll(fds, count, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return failErrno("poll");
    }
    for (int i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == child->stdinPipe().get()) {
        ssize_t w = ::write(fds[i].fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        bool retry = w < 0 && (errno == EAGAIN || errno == EINTR);
        if ((w < 0 && !retry) || written == input.size()) child->stdinPipe().reset();
        continue;
      }
      ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      bool isOut = fds[i].fd == child->stdoutPipe().get();
      if (r > 0) {
        (isOut ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        (isOut ? child->stdoutPipe() : child->stderrPipe()).reset();
      }
    }
  }
  child->stdinPipe().reset();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  auto code = child->wait(std::max(left, std::chrono::milliseconds(1)));
  if (!code) return fail(std::move(code.error()).context(describeCommand(options.argv)));
  result.exitCode = *code;
  return result;
}

Result<RunOutput> runChecked(SpawnOptions options, std::string_view input,
                             std::chrono::milliseconds timeout) {
  auto argv = options.argv;
  auto result = run(std::move(options), input, timeout);
  if (!result) return result;
  if (result->exitCode != 0) {
    std::string err = result->err.empty() ? result->out : result->err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return fail(describeCommand(argv) + " exited with " + std::to_string(result->exitCode) +
                (err.empty() ? "" : ": " + err));
  }
  return result;
}

Result<std::string> readLine(UniqueFd& pipe, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string line;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return failErrno("no complete line within the timeout", ETIMEDOUT);
    pollfd pfd{pipe.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return failErrno("poll");
    if (ready == 0) continue;
    char c;
    ssize_t n = ::read(pipe.get(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failErrno("read");
    if (n == 0) return fail("end of output before a complete line (got '" + line + "')");
    if (c == '\n') return line;
    line.push_back(c);
  }
}

uint64_t procStatusValue(const std::string& statusFile, std::string_view field) {
  std::ifstream status(statusFile);
  std::string line;
  while (std::getline(status, line)) {
    if (line.size() > field.size() && line.starts_with(field) && line[field.size()] == ':') {
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return 0;
}

std::string siblingProgram(std::string_view name) {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return std::string(name);
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + std::string(name);
}

UniqueFd stopSignalFd() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return UniqueFd(::signalfd(-1, &signals, SFD_CLOEXEC));
}

}  // namespace sluice
