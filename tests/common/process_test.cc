#include "sluice/common/process.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

namespace sluice {
namespace {

int openFdCount() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;
}

TEST(Run, CapturesOutputAndExitCode) {
  auto out = run({.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"}});
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(out->exitCode, 3);
  EXPECT_EQ(out->out, "out\n");
  EXPECT_EQ(out->err, "err\n");
}

TEST(Run, FeedsStdinLargerThanAPipe) {
  std::string input(1 << 20, 'x');  // larger than a pipe buffer: needs interleaved I/O
  auto out = run({.argv = {"cat"}}, input);
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(out->out, input);
}

TEST(Run, PassesExtraEnvironment) {
  auto out = run({.argv = {"sh", "-c", "echo $SLUICE_TEST_VAR"}, .extraEnv = {"SLUICE_TEST_VAR=42"}});
  ASSERT_TRUE(out);
  EXPECT_EQ(out->out, "42\n");
}

TEST(Run, TimesOutAndKills) {
  auto out = run({.argv = {"sleep", "10"}}, {}, std::chrono::milliseconds(100));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ETIMEDOUT);
}

TEST(Run, MissingProgramIsAnErrorNamingIt) {
  auto out = run({.argv = {"/nonexistent/program"}});
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("/nonexistent/program"), std::string::npos);
  EXPECT_EQ(out.error().code(), ENOENT);
}

TEST(RunChecked, NonZeroExitIsAnErrorWithStderr) {
  auto out = runChecked({.argv = {"sh", "-c", "echo nope >&2; exit 1"}});
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("exited with 1: nope"), std::string::npos)
      << out.error().message();
}

TEST(ChildProcess, StopTerminatesAndReportsSignal) {
  auto child = spawn({.argv = {"sleep", "30"}});
  ASSERT_TRUE(child);
  auto code = child->stop(std::chrono::seconds(5));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 128 + SIGTERM);
  EXPECT_FALSE(child->running());
}

TEST(ChildProcess, ReadLineWaitsForAnnouncement) {
  auto child = spawn({.argv = {"sh", "-c", "sleep 0.1; echo listening 1.2.3.4:5; sleep 30"},
                      .captureOutput = true});
  ASSERT_TRUE(child);
  auto line = readLine(child->stdoutPipe(), std::chrono::seconds(5));
  ASSERT_TRUE(line) << line.error().message();
  EXPECT_EQ(*line, "listening 1.2.3.4:5");
}

TEST(Spawn, LeaksNoDescriptors) {
  int before = openFdCount();
  for (int i = 0; i < 20; ++i) {
    auto out = run({.argv = {"true"}});
    ASSERT_TRUE(out);
    auto child = spawn({.argv = {"sleep", "30"}, .captureOutput = true});
    ASSERT_TRUE(child);
  }  // destruction kills and reaps
  EXPECT_EQ(openFdCount(), before);
}

}  // namespace
}  // namespace sluice
