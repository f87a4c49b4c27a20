// sluice-sim: the simulated cluster as a command, for the demo and for benchmarks.
//
//   sluice-sim demo [--nodes N] [--bytes B]   build a cluster, show pods on different nodes
//                                             talking over IPv4 and IPv6, tear it down
//   sluice-sim up [--nodes N] [--pods M]      build a cluster and keep it until Ctrl-C / SIGTERM
//   sluice-sim list                           every run on this machine and its objects
//   sluice-sim reap                           remove the objects of runs whose owner is gone
#include <signal.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "simcluster/cluster.h"
#include "sluice/common/log.h"

namespace {

using namespace sluice;
using namespace sluice::sim;

// SIGINT/SIGTERM are blocked and polled between steps, so an interrupted run still unwinds
// through the Cluster destructor and removes everything it made.
sigset_t stopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
bool stopRequested() {
  sigset_t set = stopSignals();
  timespec zero{0, 0};
  return ::sigtimedwait(&set, nullptr, &zero) > 0;
}

void printTopology(const Cluster& cluster) {
  fmt::print("cluster {} ({} nodes)\n", cluster.prefix(), cluster.nodes().size());
  for (const auto& node : cluster.nodes()) {
    fmt::print("  {:<8} underlay {:<14} {:<20} pods {} {}\n", node->name, node->addresses.underlayV4,
               node->addresses.underlayV6, node->addresses.podCidrV4, node->addresses.podCidrV6);
  }
  for (const Pod* pod : cluster.pods()) {
    fmt::print("  pod {:<12} on {:<8} {:<14} {}\n", pod->name, cluster.node(pod->node).name,
               pod->ipv4, pod->ipv6);
  }
}

Result<std::unique_ptr<Cluster>> buildCluster(int nodes, int podsPerNode,
                                              const std::vector<std::string>& podNames = {}) {
  auto cluster = Cluster::create({.nodes = nodes});
  if (!cluster) return cluster;
  for (int n = 0; n < nodes; ++n) {
    for (int p = 0; p < podsPerNode; ++p) {
      size_t slot = static_cast<size_t>(n * podsPerNode + p);
      std::string name = slot < podNames.size() ? podNames[slot] : fmt::format("pod{}-{}", n, p);
      auto pod = (*cluster)->addPod(n, name);
      if (!pod) return fail(std::move(pod.error()));
      if (stopRequested()) return fail("interrupted");
    }
  }
  return cluster;
}

int demo(int nodes, uint64_t bytes) {
  auto built = buildCluster(nodes, 1, {"client", "server"});
  if (!built) {
    fmt::print(stderr, "sluice-sim demo: {}\n", built.error().message());
    return 1;
  }
  Cluster& cluster = **built;
  printTopology(cluster);
  const Pod* server = cluster.pod("server");
  const Pod* client = cluster.pod("client");
  auto echo = cluster.runInPod("server", {.argv = {siblingProgram("sluice-tcpcheck"), "serve",
                                                   "--listen", "[::]:8080"},
                                          .captureOutput = true});
  if (!echo) {
    fmt::print(stderr, "sluice-sim demo: {}\n", echo.error().message());
    return 1;
  }
  auto ready = readLine(echo->stdoutPipe(), std::chrono::seconds(10));
  if (!ready) {
    fmt::print(stderr, "sluice-sim demo: echo server did not start: {}\n", ready.error().message());
    return 1;
  }
  int failures = 0;
  for (const std::string& ip : {server->ipv4, server->ipv6}) {
    if (stopRequested()) return 1;
    std::string to = ip.find(':') == std::string::npos ? ip + ":8080" : "[" + ip + "]:8080";
    auto check = cluster.runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send",
                                                      "--to", to, "--bytes", std::to_string(bytes)},
                                             .captureOutput = true});
    if (!check) {
      fmt::print(stderr, "sluice-sim demo: {}\n", check.error().message());
      return 1;
    }
    auto line = readLine(check->stdoutPipe(), std::chrono::seconds(60));
    auto code = check->wait(std::chrono::seconds(10));
    auto result = nlohmann::json::parse(line.value_or("{}"), nullptr, false);
    bool ok = code && *code == 0 && result.is_object() && result.value("ok", false);
    failures += ok ? 0 : 1;
    fmt::print("traffic: client ({}) -> server ({}) {}: {} bytes echoed {} in {:.3f} s\n",
               cluster.node(client->node).name, cluster.node(server->node).name, to, bytes,
               ok ? "byte for byte" : "WITH ERRORS: " + line.value_or("no result"),
               result.is_object() ? result.value("seconds", 0.0) : 0.0);
  }
  auto done = cluster.destroy();
  if (!done) {
    fmt::print(stderr, "sluice-sim demo: cleanup: {}\n", done.error().message());
    return 1;
  }
  fmt::print("cluster {} removed\n", cluster.prefix());
  return failures == 0 ? 0 : 1;
}

int up(int nodes, int pods) {
  auto built = buildCluster(nodes, pods);
  if (!built) {
    fmt::print(stderr, "sluice-sim up: {}\n", built.error().message());
    return 1;
  }
  printTopology(**built);
  fmt::print("running; Ctrl-C or SIGTERM removes it\n");
  std::fflush(stdout);
  sigset_t set = stopSignals();
  int sig = 0;
  ::sigwait(&set, &sig);
  auto done = (*built)->destroy();
  if (!done) {
    fmt::print(stderr, "sluice-sim up: cleanup: {}\n", done.error().message());
    return 1;
  }
  fmt::print("cluster {} removed\n", (*built)->prefix());
  return 0;
}

int list() {
  auto paths = detectSimPaths();
  if (!paths) {
    fmt::print(stderr, "sluice-sim list: {}\n", paths.error().message());
    return 1;
  }
  for (const auto& prefix : listRuns(*paths)) {
    fmt::print("{} {}\n", prefix, runIsLive(*paths, prefix) ? "live" : "dead");
    for (const auto& object : objectsOfRun(*paths, prefix)) fmt::print("  {}\n", object);
  }
  return 0;
}

int reap() {
  auto paths = detectSimPaths();
  if (!paths) {
    fmt::print(stderr, "sluice-sim reap: {}\n", paths.error().message());
    return 1;
  }
  auto reaped = reapStaleRuns(*paths);
  if (!reaped) {
    fmt::print(stderr, "sluice-sim reap: {}\n", reaped.error().message());
    return 1;
  }
  for (const auto& prefix : *reaped) fmt::print("removed {}\n", prefix);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  initLogging("sluice-sim");
  sigset_t set = stopSignals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);

  CLI::App app{"Sluice's simulated multi-node cluster"};
  app.require_subcommand(1);
  int nodes = 2, pods = 2;
  uint64_t bytes = 8 << 20;
  auto* demoCmd = app.add_subcommand("demo", "show pods on different nodes talking, then clean up");
  demoCmd->add_option("--nodes", nodes, "number of nodes")->check(CLI::Range(2, kMaxNodes))->capture_default_str();
  demoCmd->add_option("--bytes", bytes, "bytes each transfer echoes")->capture_default_str();
  auto* upCmd = app.add_subcommand("up", "build a cluster and keep it until interrupted");
  upCmd->add_option("--nodes", nodes, "number of nodes")->check(CLI::Range(1, kMaxNodes))->capture_default_str();
  upCmd->add_option("--pods", pods, "pods per node")->check(CLI::Range(0, 250))->capture_default_str();
  auto* listCmd = app.add_subcommand("list", "list simulation runs and their objects");
  auto* reapCmd = app.add_subcommand("reap", "remove the objects of dead runs");
  CLI11_PARSE(app, argc, argv);

  if (::geteuid() != 0) {
    fmt::print(stderr, "sluice-sim: must run as root (it creates network namespaces and cgroups)\n");
    return 1;
  }
  if (demoCmd->parsed()) return demo(nodes, bytes);
  if (upCmd->parsed()) return up(nodes, pods);
  if (listCmd->parsed()) return list();
  if (reapCmd->parsed()) return reap();
  return 1;
}
