// sluice-sim: the simulated cluster as a command, for the demo and for benchmarks.
//
//   sluice-sim demo [--nodes N] [--bytes B]   build a cluster with the mesh (agent + ztunnel on
//                                             every node), send traffic between pods on two
//                                             nodes through both tunnels over IPv4 and IPv6,
//                                             show what the mesh saw, tear it all down
//   sluice-sim up [--nodes N] [--pods M]      build a cluster and keep it until Ctrl-C / SIGTERM
//   sluice-sim list                           every run on this machine and its objects
//   sluice-sim reap                           remove the objects of runs whose owner is gone
#include <signal.h>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "simcluster/cluster.h"
#include "simcluster/mesh_node.h"
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

// Prints one tunnel's view of its pods: connections and bytes each way, from /config_dump.
void printTunnelCounters(const MeshNode& node, const std::string& nodeName) {
  auto dump = node.configDump();
  if (!dump) {
    fmt::print("  {}: config_dump unavailable: {}\n", nodeName, dump.error().message());
    return;
  }
  for (const auto& pod : (*dump)["pods"]) {
    const auto& c = pod["counters"];
    fmt::print("  ztunnel on {}: pod {}/{}: outbound {} conns {} B up {} B down; inbound {} conns {} B up {} B down\n",
               nodeName, pod["namespace"].get<std::string>(), pod["name"].get<std::string>(),
               c["outbound"]["opened"].get<uint64_t>(), c["outbound"]["bytesFromClient"].get<uint64_t>(),
               c["outbound"]["bytesToClient"].get<uint64_t>(), c["inbound"]["opened"].get<uint64_t>(),
               c["inbound"]["bytesFromClient"].get<uint64_t>(), c["inbound"]["bytesToClient"].get<uint64_t>());
  }
}

int demo(int nodeCount, uint64_t bytes) {
  auto built = createMeshCluster(nodeCount);
  if (!built) {
    fmt::print(stderr, "sluice-sim demo: {}\n", built.error().message());
    return 1;
  }
  Cluster& cluster = **built;
  std::vector<std::unique_ptr<MeshNode>> mesh;
  for (int i = 0; i < nodeCount; ++i) {
    mesh.push_back(std::make_unique<MeshNode>(cluster, i));
    auto agent = mesh.back()->startAgent();
    auto tunnel = agent ? mesh.back()->startTunnel(MeshNode::Tunnel::kZtunnel) : agent;
    if (!tunnel) {
      fmt::print(stderr, "sluice-sim demo: {}: {}\n", cluster.node(i).name, tunnel.error().message());
      return 1;
    }
    fmt::print("{}: sluice-agent and ztunnel running\n", cluster.node(i).name);
  }
  for (auto [node, name] : {std::pair{0, "client"}, std::pair{1, "server"}}) {
    auto pod = cluster.addPod(node, name, {.ns = "shop"});
    if (!pod) {
      fmt::print(stderr, "sluice-sim demo: {}\n", pod.error().message());
      return 1;
    }
  }
  printTopology(cluster);
  const Pod* server = cluster.pod("server");
  const Pod* client = cluster.pod("client");
  auto echo = cluster.runInPod("server", {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                          .captureOutput = true});
  if (!echo || !readLine(echo->stdoutPipe(), std::chrono::seconds(10))) {
    fmt::print(stderr, "sluice-sim demo: the echo server did not start\n");
    return 1;
  }
  fmt::print("\ntraffic: app in client -> eBPF capture -> ztunnel on {} -> ztunnel on {} -> app in server\n",
             cluster.node(client->node).name, cluster.node(server->node).name);
  int failures = 0;
  for (const std::string& ip : {server->ipv4, server->ipv6}) {
    if (stopRequested()) return 1;
    std::string to = withPort(ip, 8080);
    auto check = cluster.runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", to,
                                                      "--bytes", std::to_string(bytes)},
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
    fmt::print("  client -> {}: {} bytes echoed {} in {:.3f} s\n", to, bytes,
               ok ? "byte for byte" : "WITH ERRORS: " + line.value_or("no result"),
               result.is_object() ? result.value("seconds", 0.0) : 0.0);
  }
  fmt::print("\nsluicectl pods (node0):\n");
  if (auto pods = mesh[0]->sluicectl({"pods"})) fmt::print("{}", pods->out);
  fmt::print("\nsluicectl explain --pod shop/client --to {}:\n", withPort(server->ipv4, 8080));
  if (auto why = mesh[0]->sluicectl({"explain", "--pod", "shop/client", "--to", withPort(server->ipv4, 8080)})) {
    fmt::print("{}", why->out);
  }
  fmt::print("\n");
  for (int i = 0; i < nodeCount; ++i) printTunnelCounters(*mesh[static_cast<size_t>(i)], cluster.node(i).name);
  mesh.clear();
  auto done = cluster.destroy();
  if (!done) {
    fmt::print(stderr, "sluice-sim demo: cleanup: {}\n", done.error().message());
    return 1;
  }
  fmt::print("\ncluster {} removed\n", cluster.prefix());
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
  // The mesh daemons this starts log to this terminal: warnings only, unless SLUICE_LOG says.
  ::setenv("SLUICE_LOG", "warn", /*overwrite=*/0);
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
