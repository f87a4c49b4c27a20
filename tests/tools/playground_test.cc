// The playground (tools/simcluster/playground.h) as a user takes the README's tour, with the
// real binaries: `sluice-sim up --mesh`, `exec`, `apply`, Ctrl-C.
#include "simcluster/playground.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "simcluster/run_registry.h"
#include "sluice/common/process.h"
#include "support/privileged.h"

namespace sluice::sim {
namespace {

namespace fs = std::filesystem;

TEST(Playground, FindsItsPodsByName) {
  nlohmann::json playground = nlohmann::json::parse(R"({"pods": [{"name": "app-0-0", "ipv4": "10.244.0.2"}, {"name": "b"}]})");
  ASSERT_NE(playgroundPod(playground, "app-0-0"), nullptr);
  EXPECT_EQ(playgroundPod(playground, "app-0-0")->value("ipv4", ""), "10.244.0.2");
  EXPECT_EQ(playgroundPod(playground, "app-0"), nullptr);
  EXPECT_EQ(playgroundPod(nlohmann::json::object(), "b"), nullptr);
}

// What `sluice-sim up` prints until it says it is running (empty lines and all).
std::vector<std::string> linesUntilRunning(ChildProcess& sim) {
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i) {
    std::string line = readLine(sim.stdoutPipe(), std::chrono::seconds(90)).value_or("(no more output)");
    lines.push_back(line);
    if (line == "running; Ctrl-C or SIGTERM removes it" || line == "(no more output)") break;
  }
  return lines;
}

// `sluice-sim exec|apply ...` against the live playground; its output and exit code.
RunOutput sim(std::vector<std::string> args) {
  args.insert(args.begin(), siblingProgram("sluice-sim"));
  auto out = run({.argv = std::move(args), .captureOutput = true}, {}, std::chrono::seconds(60));
  EXPECT_TRUE(out) << out.error().message();
  return out.value_or(RunOutput{});
}

// The playground tour: `up --mesh` keeps a mesh running, `exec` runs commands inside its pods
// (captured: their traffic crosses the tunnels), `apply` changes its configuration (a DENY
// policy takes effect), and Ctrl-C removes everything.
TEST(Playground, TheTourWorks) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto started = spawn({.argv = {siblingProgram("sluice-sim"), "up", "--mesh", "--nodes", "2", "--pods", "1"},
                        .captureOutput = true});
  ASSERT_TRUE(started) << started.error().message();
  ChildProcess playground = std::move(*started);
  std::string prefix, server;
  for (const std::string& line : linesUntilRunning(playground)) {
    if (line.rfind("cluster ", 0) == 0) prefix = line.substr(8, 8);
    // "  pod app-1-0      on node1    10.244.1.2     fd00:...": its IPv4 address.
    if (line.rfind("  pod app-1-0 ", 0) == 0) {
      std::istringstream words(line);
      std::string word;
      for (int i = 0; i < 5 && words >> word; ++i) server = word;
    }
  }
  ASSERT_TRUE(isRunPrefix(prefix)) << prefix;
  ASSERT_FALSE(server.empty());
  // An echo server in app-1-0 (node1), a client in app-0-0 (node0): through both tunnels.
  auto echo = spawn({.argv = {siblingProgram("sluice-sim"), "exec", "app-1-0", "--", "sluice-tcpcheck", "serve", "--listen",
                              "[::]:8080"},
                     .captureOutput = true});
  ASSERT_TRUE(echo) << echo.error().message();
  ASSERT_TRUE(readLine(echo->stdoutPipe(), std::chrono::seconds(20)));
  RunOutput sent = sim({"exec", "app-0-0", "--", "sluice-tcpcheck", "send", "--to", server + ":8080", "--bytes", "100000"});
  EXPECT_EQ(sent.exitCode, 0) << sent.out << sent.err;
  EXPECT_NE(sent.out.find("\"ok\":true"), std::string::npos) << sent.out;
  RunOutput missing = sim({"exec", "nope", "--", "true"});
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.err.find("no pod nope in playground " + prefix + " (pods: app-0-0, app-1-0)"), std::string::npos) << missing.err;
  // A DENY policy for the server, applied: the next connection is refused.
  std::string policy = ::testing::TempDir() + "/deny-" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(policy) << "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                           "metadata: {name: deny-all, namespace: default}\n"
                           "spec: {selector: {matchLabels: {app: app-1-0}}, action: DENY, rules: [{}]}\n";
  RunOutput applied = sim({"apply", policy});
  EXPECT_EQ(applied.exitCode, 0) << applied.err;
  bool denied = false;
  for (int i = 0; i < 40 && !denied; ++i) {
    RunOutput attempt = sim({"exec", "app-0-0", "--", "sluice-tcpcheck", "send", "--to", server + ":8080", "--bytes", "1000"});
    denied = attempt.out.find("\"ok\":false") != std::string::npos;
    if (!denied) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(denied) << "the applied DENY policy never took effect";
  fs::remove(policy);
  // Ctrl-C: everything goes.
  ASSERT_EQ(::kill(playground.pid(), SIGINT), 0);
  auto code = playground.wait(std::chrono::seconds(60));
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, 0);
  auto paths = detectSimPaths();
  ASSERT_TRUE(paths);
  EXPECT_TRUE(objectsOfRun(*paths, prefix).empty());
  EXPECT_EQ(sim({"exec", "app-0-0", "--", "true"}).exitCode, 1) << "a removed playground still answers";
}

}  // namespace
}  // namespace sluice::sim
